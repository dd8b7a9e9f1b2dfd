//! Closed-loop load on an engine: `concurrency` tasks on the caller's compio runtime, each
//! issuing one request, awaiting its answer (an append's answer means durable), and issuing
//! the next, until a count or a deadline is reached.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use compio::runtime::ResumeUnwind;
use mailvault_engine::{Engine, EngineError, Flags, INBOX};

use crate::profile::LoadProfile;

/// Room in the load generator runtime's queue of wakes from other threads. A shard that
/// acknowledges a commit wakes one waiting task per append; compio's default (64) makes the
/// shard spin in `sched_yield` until this thread drains the queue, stalling its commit loop.
pub const CLIENT_WAKE_QUEUE_DEFAULT: usize = 4096;

/// The runtime that runs the load: one thread, io_uring, a wake queue of `wake_queue` entries.
pub fn client_runtime(wake_queue: usize) -> std::io::Result<compio::runtime::Runtime> {
    mailvault_engine::io::build_runtime(compio::runtime::RuntimeBuilder::new().sync_queue_size(wake_queue.max(1)))
}

/// When a closed loop stops issuing requests (those in flight still complete and count).
#[derive(Debug, Clone, Copy)]
pub enum Until {
    Operations(u64),
    Elapsed(Duration),
}

/// What one closed loop did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadResult {
    pub operations: u64,
    pub elapsed: Duration,
    /// Latencies and completions over time (the report's plots).
    #[serde(skip)]
    pub profile: LoadProfile,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        count_f64(self.operations) / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Two loops that ran side by side, as one: their operations added up over the longer
    /// one's time.
    fn side_by_side(mut self, other: &Self) -> Self {
        self.operations += other.operations;
        self.elapsed = self.elapsed.max(other.elapsed);
        self.profile.merge(&other.profile);
        self
    }
}

/// A count as a float for rates and means; counts here stay far below 2^52, where it is exact.
#[allow(clippy::cast_precision_loss)]
pub fn count_f64(count: u64) -> f64 {
    count as f64
}

/// Hands out permission to issue one more request; shared by a loop's tasks.
struct Budget {
    remaining: Cell<u64>,
    deadline: Option<Instant>,
}

impl Budget {
    fn new(until: Until, start: Instant) -> Self {
        match until {
            Until::Operations(count) => Self { remaining: Cell::new(count), deadline: None },
            Until::Elapsed(duration) => Self { remaining: Cell::new(u64::MAX), deadline: Some(start + duration) },
        }
    }

    fn take(&self) -> bool {
        let remaining = self.remaining.get();
        if remaining == 0 || self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return false;
        }
        self.remaining.set(remaining - 1);
        true
    }
}

/// A message body of exactly `bytes` bytes: a few header lines, then printable filler.
pub fn message_body(bytes: usize) -> Vec<u8> {
    let mut body = b"From: bench@example.org\r\nTo: user@example.org\r\nSubject: benchmark\r\n\r\n".to_vec();
    let mut line = 0_usize;
    while body.len() < bytes {
        body.extend_from_slice(format!("line {line:06} of benchmark filler text, 64 bytes long.....\r\n").as_bytes());
        line += 1;
    }
    body.truncate(bytes);
    body
}

/// Runs `concurrency` tasks (task `i` uses account `i % accounts.len()`), each calling
/// `request` in a loop until the budget runs out.
async fn closed_loop<F, R>(
    accounts: &[String],
    concurrency: usize,
    until: Until,
    request: F,
) -> Result<LoadResult, EngineError>
where
    F: Fn(usize, String) -> R + Clone + 'static,
    R: Future<Output = Result<(), EngineError>> + 'static,
{
    let start = Instant::now();
    let budget = Rc::new(Budget::new(until, start));
    let profile = Rc::new(RefCell::new(LoadProfile::default()));
    let mut tasks = Vec::with_capacity(concurrency);
    for task in 0..concurrency {
        let (budget, request, profile) = (budget.clone(), request.clone(), profile.clone());
        let account = accounts[task % accounts.len()].clone();
        tasks.push(compio::runtime::spawn(async move {
            let mut done = 0_u64;
            while budget.take() {
                let issued = Instant::now();
                request(task, account.clone()).await?;
                let completed = Instant::now();
                profile.borrow_mut().record(completed - issued, completed - start);
                done += 1;
            }
            Ok::<_, EngineError>(done)
        }));
    }
    let mut operations = 0;
    for task in tasks {
        operations += task.await.resume_unwind().ok_or(EngineError::ShutDown)??;
    }
    let elapsed = start.elapsed();
    let profile = profile.take();
    Ok(LoadResult { operations, elapsed, profile })
}

/// Durable appends of `body` to the accounts' INBOXes, `concurrency` in flight.
pub async fn appends(
    engine: &Engine,
    accounts: &[String],
    body: &[u8],
    concurrency: usize,
    until: Until,
) -> Result<LoadResult, EngineError> {
    let (engine, body) = (engine.clone(), Rc::new(body.to_vec()));
    closed_loop(accounts, concurrency, until, move |_, account| {
        let (engine, body) = (engine.clone(), body.clone());
        async move { engine.append(&account, INBOX, body.to_vec(), Flags::default(), None).await.map(drop) }
    })
    .await
}

/// Runs `load` once per shard, on that shard's own thread (`Engine::run_on_shard`), with the
/// accounts of `accounts` the shard owns and its share of `concurrency`, and adds up what the
/// loops did. The load then shares each shard's core, as frontends serving on the shards' cores
/// would, and its requests and answers cross no thread. A shard whose share is 0 (fewer
/// requests in flight than shards) gets no load; so does a shard that owns none of the
/// accounts, and its share is not handed to another (`BenchStore` gives every shard accounts).
pub async fn on_shards<L, F>(
    engine: &Engine,
    accounts: &[String],
    concurrency: usize,
    load: L,
) -> Result<LoadResult, EngineError>
where
    L: Fn(Engine, Vec<String>, usize) -> F + Clone + Send + 'static,
    F: Future<Output = Result<LoadResult, EngineError>> + 'static,
{
    let shards = engine.shard_count();
    let mut loops = Vec::new();
    for shard in 0..shards {
        let owned: Vec<String> = accounts.iter().filter(|account| engine.shard_of(account) == shard).cloned().collect();
        let share = concurrency / shards + usize::from(shard < concurrency % shards);
        if owned.is_empty() || share == 0 {
            continue;
        }
        let (on_shard, load) = (engine.clone(), load.clone());
        loops.push(engine.run_on_shard(shard, move || load(on_shard, owned, share)));
    }
    let mut total: Option<LoadResult> = None;
    for result in futures::future::join_all(loops).await {
        let result = result??;
        total = Some(match total {
            None => result,
            Some(total) => total.side_by_side(&result),
        });
    }
    total.ok_or_else(|| EngineError::InvalidInput {
        what: "load",
        reason: "no shard owns any of the load's accounts".to_owned(),
    })
}

/// The messages a read workload picks from: for each account, uids `1..=count` in its INBOX.
#[derive(Debug, Clone)]
pub struct ReadSet {
    pub accounts: Vec<String>,
    pub uid_counts: Vec<u32>,
}

impl ReadSet {
    /// Reads what is in the accounts' INBOXes (filled by appends only, so uids are dense).
    pub async fn load(engine: &Engine, accounts: &[String]) -> Result<Self, EngineError> {
        let mut uid_counts = Vec::with_capacity(accounts.len());
        for account in accounts {
            let (info, _) = engine.list_messages(account, INBOX).await?;
            uid_counts.push(info.messages);
        }
        Ok(Self { accounts: accounts.to_vec(), uid_counts })
    }

    pub fn messages(&self) -> u64 {
        self.uid_counts.iter().map(|&count| u64::from(count)).sum()
    }

    /// The part of this set in `accounts`.
    #[must_use]
    pub fn only(&self, accounts: &[String]) -> Self {
        let (accounts, uid_counts) = self
            .accounts
            .iter()
            .zip(&self.uid_counts)
            .filter(|(account, _)| accounts.contains(account))
            .map(|(account, &count)| (account.clone(), count))
            .unzip();
        Self { accounts, uid_counts }
    }
}

/// Fetches of uniformly random messages of the read set, `concurrency` in flight.
pub async fn random_fetches(
    engine: &Engine,
    read_set: &ReadSet,
    concurrency: usize,
    until: Until,
) -> Result<LoadResult, EngineError> {
    if read_set.messages() == 0 {
        return Err(EngineError::NoSuchMessage(1));
    }
    let engine = engine.clone();
    let read_set = Rc::new(read_set.clone());
    let seeds: Rc<Vec<Cell<u64>>> = Rc::new((0..concurrency as u64).map(|task| Cell::new(seed(task))).collect());
    closed_loop(&read_set.accounts.clone(), concurrency, until, move |task, _| {
        let (engine, read_set, seeds) = (engine.clone(), read_set.clone(), seeds.clone());
        async move {
            let (account, uid) = loop {
                let account = next_random(&seeds[task]) as usize % read_set.accounts.len();
                let count = read_set.uid_counts[account];
                if count > 0 {
                    break (account, (next_random(&seeds[task]) % u64::from(count)) as u32 + 1);
                }
            };
            engine.fetch(&read_set.accounts[account], INBOX, uid).await.map(drop)
        }
    })
    .await
}

fn seed(task: u64) -> u64 {
    (task + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

/// xorshift64: plenty for picking uids, and no dependency.
fn next_random(state: &Cell<u64>) -> u64 {
    let mut x = state.get();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state.set(x);
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_set_narrowed_to_some_accounts_keeps_their_counts() {
        let names = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
        let set = ReadSet { accounts: names(&["a", "b", "c"]), uid_counts: vec![3, 5, 7] };
        let narrowed = set.only(&names(&["c", "a", "x"]));
        assert_eq!(narrowed.accounts, names(&["a", "c"]));
        assert_eq!(narrowed.uid_counts, [3, 7]);
        assert_eq!(narrowed.messages(), 10);
    }
}
