//! Seeded simulation (`TigerBeetle` VOPR style): random operations (account close and reopen
//! included) over several accounts against a store on a fault-injecting disk (write/fsync EIO,
//! crashes at random writes, power loss that keeps, loses or tears every unsynced write),
//! checked after every recovery against a reference store on a fault-free disk that received
//! the same acknowledged operations.
//!
//! After a crash the faulty store must equal the reference exactly, or the reference plus the
//! one operation that was in flight (it may have become durable without its answer): every
//! acknowledged write present, nothing unacknowledged half-applied, nothing corrupted.
//!
//! Seeds: a fixed set, plus `MAILVAULT_SIMULATION_RANDOM_SEEDS` random ones (printed), or
//! exactly one with `MAILVAULT_SIMULATION_SEED=N`. A failing seed becomes a named test below.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use common::START_UNIX_MS;
use mailvault_engine::io::{FaultController, FaultRates, FaultyStorage};
use mailvault_engine::{Engine, EngineConfig, EngineError, FlagChange, Flags, ManualClock, block_on, init_store};
use mailvault_hsm::testing::TestToken;

const ACCOUNTS: [&str; 3] = ["ann@example.org", "ben@example.org", "cat@example.org"];
const MAILBOXES: [&str; 4] = ["INBOX", "Work", "Archive", "Trash"];
const FIXED_SEEDS: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const STEPS_PER_SEED: usize = 600;

/// `SplitMix64`, as in the fault controller: the whole run follows from the seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut value = self.0;
        value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        value ^ (value >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

#[derive(Debug, Clone)]
enum Operation {
    CreateMailbox(&'static str, &'static str),
    RenameMailbox(&'static str, &'static str, &'static str),
    DeleteMailbox(&'static str, &'static str),
    Append(&'static str, &'static str, Vec<u8>),
    AddFlags(&'static str, &'static str, Vec<u32>),
    Copy(&'static str, &'static str, Vec<u32>, &'static str),
    Move(&'static str, &'static str, Vec<u32>, &'static str),
    Expunge(&'static str, &'static str, Vec<u32>),
    RestoreOldest(&'static str),
    PruneDeleted(&'static str),
    Compact,
    Close(&'static str),
    Reopen(&'static str),
}

fn generate(random: &mut Random, step: usize) -> Operation {
    let account = random.pick(&ACCOUNTS);
    // INBOX half the time, so that most operations find their mailbox.
    let mailbox_pick = |random: &mut Random| if random.below(2) == 0 { "INBOX" } else { random.pick(&MAILBOXES) };
    let mailbox = mailbox_pick(random);
    let other = mailbox_pick(random);
    let uids: Vec<u32> = (0..=random.below(2)).map(|_| 1 + random.below(8) as u32).collect();
    match random.below(25) {
        0 => Operation::CreateMailbox(account, random.pick(&MAILBOXES[1..])),
        1 => Operation::RenameMailbox(account, mailbox, other),
        2 => Operation::DeleteMailbox(account, mailbox),
        3..=9 => {
            let size = [64, 900, 5000, 70_000][random.below(4)];
            let body = format!("Subject: step {step}\r\n\r\n{}\r\n", "x".repeat(size)).into_bytes();
            Operation::Append(account, mailbox, body)
        }
        10..=12 => Operation::AddFlags(account, mailbox, uids),
        13 => Operation::Copy(account, mailbox, uids, other),
        14 => Operation::Move(account, mailbox, uids, other),
        15..=17 => Operation::Expunge(account, mailbox, uids),
        18 | 19 => Operation::RestoreOldest(account),
        20 => Operation::PruneDeleted(account),
        21 => Operation::Close(account),
        22 => Operation::Reopen(account),
        _ => Operation::Compact,
    }
}

thread_local! {
    /// Segments compacted by `Compact` operations on this thread (both stores count; the faulty
    /// store's share is read around its calls).
    static COMPACTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Runs one operation; `Ok(false)` is a refusal (validation), the same on any store.
fn apply(engine: &Engine, operation: &Operation) -> Result<bool, EngineError> {
    let seen = || FlagChange::Add(Flags { system: Flags::SEEN, keywords: vec!["$sim".into()] });
    let result = block_on(async {
        match operation {
            Operation::CreateMailbox(account, name) => engine.create_mailbox(account, name).await,
            Operation::RenameMailbox(account, from, to) => engine.rename_mailbox(account, from, to).await,
            Operation::DeleteMailbox(account, name) => engine.delete_mailbox(account, name).await,
            Operation::Append(account, mailbox, body) => {
                engine.append(account, mailbox, body.clone(), Flags::default(), None).await.map(drop)
            }
            Operation::AddFlags(account, mailbox, uids) => engine.change_flags(account, mailbox, uids, seen()).await,
            Operation::Copy(account, from, uids, to) => engine.copy(account, from, uids, to).await.map(drop),
            Operation::Move(account, from, uids, to) => engine.move_messages(account, from, uids, to).await.map(drop),
            Operation::Expunge(account, mailbox, uids) => engine.expunge(account, mailbox, uids).await,
            Operation::PruneDeleted(account) => engine.prune_deleted(account).await.map(drop),
            Operation::Compact => engine
                .compact()
                .await
                .map(|report| COMPACTED.with(|total| total.set(total.get() + report.segments_compacted))),
            Operation::Close(account) => engine.close_account(account, None).await.map(drop),
            Operation::Reopen(account) => engine.reopen_account(account).await,
            Operation::RestoreOldest(account) => match engine.list_deleted(account).await?.first() {
                Some(deleted) => engine.restore(account, deleted.id).await.map(drop),
                None => Err(EngineError::NotRestorable),
            },
        }
    });
    match result {
        Ok(()) => Ok(true),
        Err(
            EngineError::NoSuchMailbox(_)
            | EngineError::MailboxExists(_)
            | EngineError::NoSuchMessage(_)
            | EngineError::NotRestorable
            | EngineError::InvalidInput { .. }
            | EngineError::AccountClosed { .. }
            | EngineError::AccountNotClosed(_),
        ) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Everything a client can observe, in a stable order.
fn observe(engine: &Engine) -> String {
    block_on(async {
        let mut state = String::new();
        for account_state in engine.account_states().await.unwrap() {
            let account = account_state.name;
            if let Some(purge_at) = account_state.purge_after_unix_ms {
                // Closed: nothing else is reachable (reopening later shows the rest again).
                let _ = writeln!(state, "{account} closed until {purge_at}");
                continue;
            }
            for mailbox in engine.list_mailboxes(&account).await.unwrap() {
                let _ = writeln!(state, "{account} {mailbox:?}");
                let (_, messages) = engine.list_messages(&account, &mailbox.name).await.unwrap();
                for message in messages {
                    let _ = writeln!(state, "  {message:?}");
                }
            }
            let _ = writeln!(state, "{account} deleted {:?}", engine.list_deleted(&account).await.unwrap());
        }
        state
    })
}

struct Store {
    directory: tempfile::TempDir,
    config: EngineConfig,
}

impl Store {
    fn new(clock: &ManualClock) -> Self {
        let directory = tempfile::tempdir().unwrap();
        init_store(directory.path(), 2).unwrap();
        let mut config = EngineConfig::new(directory.path());
        config.clock = Arc::new(clock.clone());
        config.segment_bytes_max = 128 * 1024;
        config.checkpoint_interval_records = 40;
        Self { directory, config }
    }
}

fn open_faulty(store: &Store, token: &TestToken, controller: &FaultController) -> Engine {
    let controller = controller.clone();
    let make = move |_: u32, directory: PathBuf| FaultyStorage::new(directory, controller.clone());
    Engine::open_with(&store.config, &token.hsm, make).unwrap()
}

#[derive(Debug, Default)]
struct RunReport {
    operations: usize,
    refused: usize,
    crashes: usize,
    in_flight_survived: usize,
    in_flight_lost: usize,
    segments_compacted: u64,
}

/// Crashes, loses power, recovers, and checks the faulty store against the reference.
fn recover_and_check(
    seed: u64,
    faulty: Engine,
    in_flight: Option<&Operation>,
    context: (&Store, &TestToken, &FaultController, &Engine),
    report: &mut RunReport,
) -> Engine {
    let (store, token, controller, reference) = context;
    controller.crash_now();
    drop(faulty);
    controller.power_loss().unwrap();
    report.crashes += 1;
    if report.crashes.is_multiple_of(3) {
        // Every third recovery replays the whole log: compacted-away segments included.
        for shard in ["shard-000", "shard-001"] {
            let _ = std::fs::remove_file(store.directory.path().join(shard).join("checkpoint"));
        }
    }
    let rates = FaultRates::default();
    controller.set_rates(rates);
    let faulty = open_faulty(store, token, controller);
    let recovered = observe(&faulty);
    if recovered != observe(reference) {
        let operation = in_flight.unwrap_or_else(|| panic!("seed {seed}: an acknowledged write was lost"));
        apply(reference, operation).unwrap();
        assert_eq!(
            recovered,
            observe(reference),
            "seed {seed}: recovered state is neither before nor after {operation:?}"
        );
        report.in_flight_survived += 1;
    } else if in_flight.is_some() {
        report.in_flight_lost += 1;
    }
    faulty
}

fn run_seed(seed: u64) -> RunReport {
    let token = TestToken::create_with_keys();
    let clock = ManualClock::new(START_UNIX_MS);
    let reference_store = Store::new(&clock);
    let faulty_store = Store::new(&clock);
    let reference = Engine::open(&reference_store.config, &token.hsm).unwrap();
    let controller = FaultController::new(seed);
    let mut faulty = open_faulty(&faulty_store, &token, &controller);
    for account in ACCOUNTS {
        block_on(reference.create_account(account)).unwrap();
        block_on(faulty.create_account(account)).unwrap();
    }
    let mut random = Random(seed);
    let mut report = RunReport::default();
    for step in 0..STEPS_PER_SEED {
        clock.advance_ms(1000 + i64::try_from(random.below(4 * 3_600_000)).unwrap());
        match random.below(40) {
            0 => controller.crash_after_writes(random.below(4) as u64),
            1 => controller.set_rates(FaultRates {
                write_error_per_mille: 20,
                sync_error_per_mille: 20,
                ..FaultRates::default()
            }),
            2 => {
                faulty = recover_and_check(
                    seed,
                    faulty,
                    None,
                    (&faulty_store, &token, &controller, &reference),
                    &mut report,
                );
                continue;
            }
            _ => {}
        }
        let operation = generate(&mut random, step);
        report.operations += 1;
        let compacted_before = COMPACTED.with(std::cell::Cell::get);
        let outcome = apply(&faulty, &operation);
        report.segments_compacted += COMPACTED.with(std::cell::Cell::get) - compacted_before;
        if let Ok(accepted) = outcome {
            let reference_accepted = apply(&reference, &operation).unwrap();
            assert_eq!(accepted, reference_accepted, "seed {seed} step {step}: {operation:?}");
            report.refused += usize::from(!accepted);
        } else {
            let context = (&faulty_store, &token, &controller, &reference);
            faulty = recover_and_check(seed, faulty, Some(&operation), context, &mut report);
        }
    }
    faulty = recover_and_check(seed, faulty, None, (&faulty_store, &token, &controller, &reference), &mut report);
    assert_eq!(observe(&faulty), observe(&reference), "seed {seed}: final state");
    drop((reference_store.directory, faulty_store.directory));
    report
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("MAILVAULT_SIMULATION_SEED").ok().and_then(|seed| seed.parse().ok()) {
        return vec![seed];
    }
    let random_count: u64 =
        std::env::var("MAILVAULT_SIMULATION_RANDOM_SEEDS").ok().and_then(|count| count.parse().ok()).unwrap_or(2);
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |elapsed| elapsed.as_nanos());
    let random = (0..random_count).map(|index| (now as u64).wrapping_mul(index + 1) | 1 << 40);
    FIXED_SEEDS.into_iter().chain(random).collect()
}

#[test]
fn simulation_over_fixed_and_random_seeds() {
    let mut compacted_total = 0;
    let seeds = seeds();
    for &seed in &seeds {
        eprintln!("simulation seed {seed} (rerun: MAILVAULT_SIMULATION_SEED={seed})");
        let report = run_seed(seed);
        eprintln!("simulation seed {seed}: {report:?}");
        assert!(report.operations > STEPS_PER_SEED * 9 / 10 && report.crashes > 5, "too little happened: {report:?}");
        compacted_total += report.segments_compacted;
    }
    if seeds.len() > 1 {
        assert!(compacted_total > 0, "no seed compacted a segment: the simulation does not exercise compaction");
    }
}

/// Seed 6 lost a message body: compaction moved bodies in the index only after its commit,
/// but the commit rotated the segment and wrote a checkpoint in between, naming the old places
/// for a log position past the moves; a crash once the old segment was gone lost the body.
#[test]
fn regression_seed_6_relocations_precede_a_rotation_checkpoint() {
    let report = run_seed(6);
    assert!(report.crashes > 5, "{report:?}");
}

/// Seed 5, once a shard reopened itself after a failed write or sync (session 28): a segment's
/// footer whose sync had failed was read back by the reopen, the shard went on in the next
/// segment, and after the power loss the sealed segment had no footer, so the store did not
/// open. Recovery now syncs every segment before it reads them.
#[test]
fn regression_seed_5_a_reopen_syncs_what_it_reads_back() {
    let report = run_seed(5);
    assert!(report.crashes > 5, "{report:?}");
}
