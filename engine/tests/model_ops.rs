//! The engine agrees with a plain in-memory model of accounts, mailboxes and messages over
//! random sequences of every mail operation and restarts (with and without a checkpoint): same
//! answers, same errors, same state (names, UIDVALIDITY, uids, flags, bodies, deleted list).
#![allow(clippy::unwrap_used)] // helpers fail the test the way the tests themselves do

use std::collections::BTreeMap;
use std::sync::Arc;

use mailvault_engine::{
    DeletedMessageId, DeletedMessageInfo, Engine, EngineConfig, EngineError, FlagChange, Flags, INBOX, MailboxInfo,
    ManualClock, MessageInfo, block_on, init_store,
};
use mailvault_hsm::testing::TestToken;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Two real accounts on different shards (FNV-1a routing: alice → 1, bob → 0), and one that
/// exists only if an operation creates it.
const ACCOUNTS: [&str; 3] = ["alice@example.org", "bob@example.org", "ghost@example.org"];
/// Names for new mailboxes: INBOX in another spelling, and an invalid (empty) name, come up too.
const NEW_NAMES: [&str; 8] = ["Work", "Archive", "Lists/Rust", "Trash", "Ünïcödé", "Sent", "inbox", ""];
const KEYWORDS: [&str; 4] = ["$Label1", "Work", "urgent", ""];
const MESSAGE_BYTES_MAX: usize = 2048;
const RETENTION_DAYS: u32 = 14;
const DAY_MS: i64 = 24 * 3600 * 1000;
const START_UNIX_MS: i64 = 1_795_392_000_000;
const CASES: u32 = 32;
const OPERATIONS_MAX: usize = 64;

/// Operations name mailboxes and messages by picks, resolved against the model's state when
/// they run, so that most of them find what they look for and some do not.
#[derive(Debug, Clone)]
enum Operation {
    CreateAccount { account: usize },
    CreateMailbox { account: usize, name: usize },
    Rename { account: usize, from: MailboxPick, to: usize },
    Delete { account: usize, name: MailboxPick },
    Append { account: usize, mailbox: MailboxPick, body_bytes: usize, flags: Flags },
    ChangeFlags { account: usize, mailbox: MailboxPick, uids: UidPick, change: FlagChange },
    Copy { account: usize, from: MailboxPick, to: MailboxPick, uids: UidPick, remove_source: bool },
    Expunge { account: usize, mailbox: MailboxPick, uids: UidPick },
    Restore { account: usize, pick: u8 },
    AdvanceClock { hours: i64 },
    Restart { keep_checkpoint: bool },
}

/// Mostly an existing mailbox of the account (by position), sometimes a name from `NEW_NAMES`.
#[derive(Debug, Clone, Copy)]
struct MailboxPick(u8);

/// Consecutive existing uids from a position, then sometimes a repeat or a uid never assigned.
#[derive(Debug, Clone, Copy)]
struct UidPick {
    start: u8,
    count: u8,
    extra: u8,
}

fn flags() -> impl Strategy<Value = Flags> {
    let system = prop_oneof![39 => 0_u8..32, 1 => 32_u8..=255];
    let keywords = vec(prop_oneof![39 => 0_usize..3, 1 => Just(3)], 0..3);
    (system, keywords).prop_map(|(system, keywords)| Flags {
        system,
        keywords: keywords.into_iter().map(|index| KEYWORDS[index].to_owned()).collect(),
    })
}

fn operation() -> impl Strategy<Value = Operation> {
    let account = prop_oneof![19 => 0_usize..2, 1 => Just(2)];
    let name = 0..NEW_NAMES.len();
    let mailbox = any::<u8>().prop_map(MailboxPick);
    let uids = (any::<u8>(), 1_u8..4, any::<u8>()).prop_map(|(start, count, extra)| UidPick { start, count, extra });
    let change = (0_u8..3, flags()).prop_map(|(kind, flags)| match kind {
        0 => FlagChange::Add(flags),
        1 => FlagChange::Remove(flags),
        _ => FlagChange::Replace(flags),
    });
    let body_bytes = prop_oneof![26 => 1_usize..400, 1 => Just(0), 1 => Just(MESSAGE_BYTES_MAX + 1)];
    prop_oneof![
        1 => account.clone().prop_map(|account| Operation::CreateAccount { account }),
        3 => (account.clone(), name.clone()).prop_map(|(account, name)| Operation::CreateMailbox { account, name }),
        2 => (account.clone(), mailbox.clone(), name).prop_map(|(account, from, to)| Operation::Rename { account, from, to }),
        1 => (account.clone(), mailbox.clone()).prop_map(|(account, name)| Operation::Delete { account, name }),
        8 => (account.clone(), mailbox.clone(), body_bytes, flags()).prop_map(|(account, mailbox, body_bytes, flags)| {
            Operation::Append { account, mailbox, body_bytes, flags }
        }),
        3 => (account.clone(), mailbox.clone(), uids.clone(), change)
            .prop_map(|(account, mailbox, uids, change)| Operation::ChangeFlags { account, mailbox, uids, change }),
        4 => (account.clone(), mailbox.clone(), mailbox.clone(), uids.clone(), any::<bool>()).prop_map(
            |(account, from, to, uids, remove_source)| Operation::Copy { account, from, to, uids, remove_source }
        ),
        3 => (account.clone(), mailbox, uids).prop_map(|(account, mailbox, uids)| Operation::Expunge { account, mailbox, uids }),
        2 => (account, any::<u8>()).prop_map(|(account, pick)| Operation::Restore { account, pick }),
        1 => (0_i64..=144).prop_map(|hours| Operation::AdvanceClock { hours }),
        1 => any::<bool>().prop_map(|keep_checkpoint| Operation::Restart { keep_checkpoint }),
    ]
}

/// The errors the model predicts, by kind and the name or uid they carry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    NoSuchAccount,
    AccountExists,
    NoSuchMailbox(String),
    MailboxExists(String),
    NoSuchMessage(u32),
    NotRestorable,
    InvalidInput,
    MessageTooLarge,
}

fn refusal(error: &EngineError) -> Refusal {
    match error {
        EngineError::NoSuchAccount(_) => Refusal::NoSuchAccount,
        EngineError::AccountExists(_) => Refusal::AccountExists,
        EngineError::NoSuchMailbox(name) => Refusal::NoSuchMailbox(name.clone()),
        EngineError::MailboxExists(name) => Refusal::MailboxExists(name.clone()),
        EngineError::NoSuchMessage(uid) => Refusal::NoSuchMessage(*uid),
        EngineError::NotRestorable => Refusal::NotRestorable,
        EngineError::InvalidInput { .. } => Refusal::InvalidInput,
        EngineError::MessageTooLarge { .. } => Refusal::MessageTooLarge,
        other => panic!("the engine failed: {other}"),
    }
}

#[derive(Debug, Clone)]
struct ModelMessage {
    body: Vec<u8>,
    flags: Flags,
    internal_date_unix_ms: i64,
}

#[derive(Debug)]
struct ModelMailbox {
    name: String,
    uid_validity: u32,
    uid_next: u32,
    messages: BTreeMap<u32, ModelMessage>,
}

#[derive(Debug)]
struct ModelDeleted {
    id: DeletedMessageId,
    mailbox_name: String,
    message: ModelMessage,
    expunged_unix_ms: i64,
}

#[derive(Debug)]
struct ModelAccount {
    /// By mailbox id: ids are handed out in creation order and never reused.
    mailboxes: BTreeMap<u32, ModelMailbox>,
    next_mailbox_id: u32,
    last_uid_validity: u32,
    /// Every expunged message, restorable or not (expired ones are only hidden).
    deleted: Vec<ModelDeleted>,
}

impl ModelAccount {
    fn mailbox_id(&self, name: &str) -> Option<u32> {
        self.mailboxes.iter().find(|(_, mailbox)| mailbox.name == name).map(|(id, _)| *id)
    }

    fn mailbox(&self, name: &str) -> Result<u32, Refusal> {
        self.mailbox_id(name).ok_or_else(|| Refusal::NoSuchMailbox(name.to_owned()))
    }
}

/// The state the engine should be in, and what each operation should answer.
#[derive(Debug)]
struct Model {
    accounts: BTreeMap<String, ModelAccount>,
    now_unix_ms: i64,
}

fn normalize(name: &str) -> String {
    if name.eq_ignore_ascii_case(INBOX) { INBOX.to_owned() } else { name.to_owned() }
}

fn valid_name(name: &str) -> Result<(), Refusal> {
    let valid = !name.is_empty() && name.len() <= 1024 && !name.chars().any(char::is_control);
    if valid { Ok(()) } else { Err(Refusal::InvalidInput) }
}

fn valid_flags(flags: &Flags) -> Result<(), Refusal> {
    let valid = flags.system < 32 && flags.keywords.iter().all(|keyword| !keyword.is_empty() && keyword.len() <= 128);
    if valid { Ok(()) } else { Err(Refusal::InvalidInput) }
}

/// The listed uids of a mailbox, each once and each present, in the order given.
fn listed(mailbox: &ModelMailbox, uids: &[u32]) -> Result<Vec<(u32, ModelMessage)>, Refusal> {
    for (position, uid) in uids.iter().enumerate() {
        if uids[..position].contains(uid) {
            return Err(Refusal::InvalidInput);
        }
    }
    uids.iter()
        .map(|uid| mailbox.messages.get(uid).map(|message| (*uid, message.clone())).ok_or(Refusal::NoSuchMessage(*uid)))
        .collect()
}

fn body(bytes: usize, seed: usize) -> Vec<u8> {
    (0..bytes).map(|position| b"Subject: model\r\n\r\nabcdefghijklmnopqrstuvwxyz"[(position + seed) % 44]).collect()
}

impl Model {
    fn account(&mut self, name: &str) -> Result<&mut ModelAccount, Refusal> {
        self.accounts.get_mut(name).ok_or(Refusal::NoSuchAccount)
    }

    fn seconds(&self) -> u32 {
        u32::try_from(self.now_unix_ms / 1000).unwrap_or(u32::MAX)
    }

    fn create_account(&mut self, name: &str) -> Result<(), Refusal> {
        if self.accounts.contains_key(name) {
            return Err(Refusal::AccountExists);
        }
        let uid_validity = self.seconds().max(1);
        let inbox = ModelMailbox { name: INBOX.to_owned(), uid_validity, uid_next: 1, messages: BTreeMap::new() };
        let account = ModelAccount {
            mailboxes: BTreeMap::from([(1, inbox)]),
            next_mailbox_id: 2,
            last_uid_validity: uid_validity,
            deleted: Vec::new(),
        };
        self.accounts.insert(name.to_owned(), account);
        Ok(())
    }

    fn create_mailbox(&mut self, account: &str, name: &str) -> Result<(), Refusal> {
        let name = normalize(name);
        valid_name(&name)?;
        let seconds = self.seconds();
        let account = self.account(account)?;
        if account.mailbox_id(&name).is_some() {
            return Err(Refusal::MailboxExists(name));
        }
        let uid_validity = seconds.max(account.last_uid_validity + 1);
        account.last_uid_validity = uid_validity;
        let mailbox = ModelMailbox { name, uid_validity, uid_next: 1, messages: BTreeMap::new() };
        account.mailboxes.insert(account.next_mailbox_id, mailbox);
        account.next_mailbox_id += 1;
        Ok(())
    }

    fn rename(&mut self, account: &str, from: &str, to: &str) -> Result<(), Refusal> {
        let (from, to) = (normalize(from), normalize(to));
        valid_name(&to)?;
        let account = self.account(account)?;
        let source = account.mailbox(&from)?;
        if from == INBOX {
            return Err(Refusal::InvalidInput);
        }
        if account.mailbox_id(&to).is_some() {
            return Err(Refusal::MailboxExists(to));
        }
        account.mailboxes.get_mut(&source).unwrap().name = to;
        Ok(())
    }

    fn delete(&mut self, account: &str, name: &str) -> Result<(), Refusal> {
        let name = normalize(name);
        let now = self.now_unix_ms;
        let account = self.account(account)?;
        let id = account.mailbox(&name)?;
        if name == INBOX {
            return Err(Refusal::InvalidInput);
        }
        let mailbox = account.mailboxes.remove(&id).unwrap();
        for (uid, message) in mailbox.messages {
            let id = DeletedMessageId { mailbox_id: id, uid };
            account.deleted.push(ModelDeleted { id, mailbox_name: name.clone(), message, expunged_unix_ms: now });
        }
        Ok(())
    }

    fn append(&mut self, account: &str, mailbox: &str, body: Vec<u8>, flags: Flags) -> Result<u32, Refusal> {
        if body.len() > MESSAGE_BYTES_MAX {
            return Err(Refusal::MessageTooLarge);
        }
        if body.is_empty() {
            return Err(Refusal::InvalidInput);
        }
        valid_flags(&flags)?;
        let now = self.now_unix_ms;
        let account = self.account(account)?;
        let mailbox = account.mailboxes.get_mut(&account.mailbox(&normalize(mailbox))?).unwrap();
        let uid = mailbox.uid_next;
        mailbox.uid_next += 1;
        mailbox.messages.insert(uid, ModelMessage { body, flags, internal_date_unix_ms: now });
        Ok(uid)
    }

    fn change_flags(&mut self, account: &str, mailbox: &str, uids: &[u32], change: &FlagChange) -> Result<(), Refusal> {
        let account = self.account(account)?;
        let mailbox = account.mailboxes.get_mut(&account.mailbox(&normalize(mailbox))?).unwrap();
        let mut changed = Vec::new();
        for (uid, message) in listed(mailbox, uids)? {
            let flags = change.apply(&message.flags);
            valid_flags(&flags)?;
            changed.push((uid, flags));
        }
        for (uid, flags) in changed {
            mailbox.messages.get_mut(&uid).unwrap().flags = flags;
        }
        Ok(())
    }

    fn copy(
        &mut self,
        account: &str,
        from: &str,
        to: &str,
        uids: &[u32],
        remove: bool,
    ) -> Result<Vec<(u32, u32)>, Refusal> {
        let account = self.account(account)?;
        let source = account.mailbox(&normalize(from))?;
        let target = account.mailbox(&normalize(to))?;
        let copied = listed(&account.mailboxes[&source], uids)?;
        let mut map = Vec::new();
        for (source_uid, message) in copied {
            if remove {
                account.mailboxes.get_mut(&source).unwrap().messages.remove(&source_uid);
            }
            let target = account.mailboxes.get_mut(&target).unwrap();
            map.push((source_uid, target.uid_next));
            target.messages.insert(target.uid_next, message);
            target.uid_next += 1;
        }
        Ok(map)
    }

    fn expunge(&mut self, account: &str, mailbox: &str, uids: &[u32]) -> Result<(), Refusal> {
        let now = self.now_unix_ms;
        let account = self.account(account)?;
        let id = account.mailbox(&normalize(mailbox))?;
        let mailbox = account.mailboxes.get_mut(&id).unwrap();
        for (uid, message) in listed(mailbox, uids)? {
            mailbox.messages.remove(&uid);
            let deleted_id = DeletedMessageId { mailbox_id: id, uid };
            let mailbox_name = mailbox.name.clone();
            account.deleted.push(ModelDeleted { id: deleted_id, mailbox_name, message, expunged_unix_ms: now });
        }
        Ok(())
    }

    fn restore(&mut self, account: &str, id: DeletedMessageId) -> Result<(String, u32), Refusal> {
        let now = self.now_unix_ms;
        let account = self.account(account)?;
        let retention_ms = i64::from(RETENTION_DAYS) * DAY_MS;
        let position = account
            .deleted
            .iter()
            .position(|deleted| deleted.id == id && now < deleted.expunged_unix_ms + retention_ms)
            .ok_or(Refusal::NotRestorable)?;
        let deleted = account.deleted.remove(position);
        let target_id = if account.mailboxes.contains_key(&id.mailbox_id) { id.mailbox_id } else { 1 };
        let target = account.mailboxes.get_mut(&target_id).unwrap();
        let uid = target.uid_next;
        target.uid_next += 1;
        target.messages.insert(uid, deleted.message);
        Ok((target.name.clone(), uid))
    }

    /// What `list_deleted` shows: restorable messages, oldest first.
    fn deleted(&self, account: &str) -> Vec<DeletedMessageInfo> {
        let retention_ms = i64::from(RETENTION_DAYS) * DAY_MS;
        let mut deleted: Vec<DeletedMessageInfo> = self.accounts[account]
            .deleted
            .iter()
            .filter(|deleted| self.now_unix_ms < deleted.expunged_unix_ms + retention_ms)
            .map(|deleted| DeletedMessageInfo {
                id: deleted.id,
                mailbox_name: deleted.mailbox_name.clone(),
                size: deleted.message.body.len() as u64,
                expunged_unix_ms: deleted.expunged_unix_ms,
                restorable_until_unix_ms: deleted.expunged_unix_ms + retention_ms,
            })
            .collect();
        deleted.sort_by_key(|info| (info.expunged_unix_ms, info.id.mailbox_id, info.id.uid));
        deleted
    }

    /// The mailbox name a pick stands for in this account (as a client might spell it);
    /// `with_messages` prefers mailboxes that hold some, for operations that take messages.
    fn mailbox_name(&self, account: &str, pick: MailboxPick, with_messages: bool) -> String {
        let mailboxes: Vec<&ModelMailbox> =
            self.accounts.get(account).map(|account| account.mailboxes.values().collect()).unwrap_or_default();
        let holding: Vec<&ModelMailbox> =
            mailboxes.iter().copied().filter(|mailbox| !mailbox.messages.is_empty()).collect();
        let existing = if with_messages && !holding.is_empty() { holding } else { mailboxes };
        match existing.len() {
            count if count > 0 && pick.0 < 240 => {
                let name = &existing[usize::from(pick.0) % count].name;
                if name == INBOX && pick.0.is_multiple_of(2) { "Inbox".to_owned() } else { name.clone() }
            }
            _ => NEW_NAMES[usize::from(pick.0) % NEW_NAMES.len()].to_owned(),
        }
    }

    /// The uids a pick stands for in this mailbox.
    fn uids(&self, account: &str, mailbox: &str, pick: UidPick) -> Vec<u32> {
        let existing: Vec<u32> = self
            .accounts
            .get(account)
            .and_then(|account| account.mailbox_id(&normalize(mailbox)).map(|id| &account.mailboxes[&id]))
            .map(|mailbox| mailbox.messages.keys().copied().collect())
            .unwrap_or_default();
        let count = usize::from(pick.count).min(existing.len());
        let mut uids: Vec<u32> =
            (0..count).map(|offset| existing[(usize::from(pick.start) + offset) % existing.len()]).collect();
        match pick.extra {
            0..=229 if !uids.is_empty() => {}
            230..=242 if !uids.is_empty() => uids.push(uids[0]),
            _ => uids.push(1000 + u32::from(pick.extra)),
        }
        uids
    }
}

fn mailbox_info(mailbox: &ModelMailbox) -> MailboxInfo {
    MailboxInfo {
        name: mailbox.name.clone(),
        uid_validity: mailbox.uid_validity,
        uid_next: mailbox.uid_next,
        messages: mailbox.messages.len() as u32,
        unseen: mailbox.messages.values().filter(|message| !message.flags.contains(Flags::SEEN)).count() as u32,
        size_bytes: mailbox.messages.values().map(|message| message.body.len() as u64).sum(),
    }
}

fn message_info(uid: u32, message: &ModelMessage) -> MessageInfo {
    MessageInfo {
        uid,
        flags: message.flags.clone(),
        size: message.body.len() as u64,
        internal_date_unix_ms: message.internal_date_unix_ms,
        digest: *blake3::hash(&message.body).as_bytes(),
    }
}

/// One test case's store: its own directory and clock, the shared token.
struct Store<'a> {
    token: &'a TestToken,
    _directory: tempfile::TempDir,
    config: EngineConfig,
    clock: ManualClock,
}

impl<'a> Store<'a> {
    fn new(token: &'a TestToken) -> Self {
        let directory = tempfile::tempdir().unwrap();
        init_store(directory.path(), 2).unwrap();
        let clock = ManualClock::new(START_UNIX_MS);
        let mut config = EngineConfig::new(directory.path());
        config.clock = Arc::new(clock.clone());
        config.message_bytes_max = MESSAGE_BYTES_MAX;
        config.retention_days = RETENTION_DAYS;
        Self { token, _directory: directory, config, clock }
    }

    fn open(&self) -> Engine {
        Engine::open(&self.config, &self.token.hsm).unwrap()
    }

    fn remove_checkpoints(&self) {
        for shard in ["shard-000", "shard-001"] {
            let _ = std::fs::remove_file(self.config.data_dir.join(shard).join("checkpoint"));
        }
    }
}

/// Compares everything the engine shows with the model; `bodies` also fetches every message.
async fn assert_same_state(engine: &Engine, model: &Model, bodies: bool, context: &str) {
    let names: Vec<String> = model.accounts.keys().cloned().collect();
    assert_eq!(engine.list_accounts().await.unwrap(), names, "{context}: accounts");
    for name in ACCOUNTS {
        let Some(account) = model.accounts.get(name) else {
            assert!(matches!(engine.list_mailboxes(name).await, Err(EngineError::NoSuchAccount(_))), "{context}");
            continue;
        };
        let expected: Vec<MailboxInfo> = account.mailboxes.values().map(mailbox_info).collect();
        assert_eq!(engine.list_mailboxes(name).await.unwrap(), expected, "{context}: mailboxes of {name}");
        for mailbox in account.mailboxes.values() {
            let (info, messages) = engine.list_messages(name, &mailbox.name).await.unwrap();
            assert_eq!(info, mailbox_info(mailbox), "{context}: {name}/{}", mailbox.name);
            let expected: Vec<MessageInfo> =
                mailbox.messages.iter().map(|(uid, message)| message_info(*uid, message)).collect();
            assert_eq!(messages, expected, "{context}: messages of {name}/{}", mailbox.name);
            if bodies {
                for (uid, message) in &mailbox.messages {
                    let fetched = engine.fetch(name, &mailbox.name, *uid).await.unwrap();
                    assert_eq!(fetched.body, message.body, "{context}: body of {name}/{} uid {uid}", mailbox.name);
                }
            }
        }
        assert_eq!(engine.list_deleted(name).await.unwrap(), model.deleted(name), "{context}: deleted of {name}");
    }
}

/// Applies one operation to the engine and the model and compares their answers.
async fn apply(engine: &Engine, model: &mut Model, operation: &Operation, seed: usize) {
    let context = format!("{operation:?}");
    let same = |answer: Result<(), EngineError>, predicted: Result<(), Refusal>, details: &str| {
        assert_eq!(answer.map_err(|error| refusal(&error)), predicted, "{context} {details}");
    };
    match operation {
        Operation::CreateAccount { account } => {
            let account = ACCOUNTS[*account];
            same(engine.create_account(account).await, model.create_account(account), "");
        }
        Operation::CreateMailbox { account, name } => {
            let (account, name) = (ACCOUNTS[*account], NEW_NAMES[*name]);
            same(engine.create_mailbox(account, name).await, model.create_mailbox(account, name), "");
        }
        Operation::Rename { account, from, to } => {
            let (account, to) = (ACCOUNTS[*account], NEW_NAMES[*to]);
            let from = &model.mailbox_name(account, *from, false);
            same(engine.rename_mailbox(account, from, to).await, model.rename(account, from, to), from);
        }
        Operation::Delete { account, name } => {
            let account = ACCOUNTS[*account];
            let name = &model.mailbox_name(account, *name, false);
            same(engine.delete_mailbox(account, name).await, model.delete(account, name), name);
        }
        Operation::Append { account, mailbox, body_bytes, flags } => {
            let (account, body) = (ACCOUNTS[*account], body(*body_bytes, seed));
            let mailbox = &model.mailbox_name(account, *mailbox, false);
            let answer = engine.append(account, mailbox, body.clone(), flags.clone(), None).await;
            let predicted = model.append(account, mailbox, body, flags.clone());
            assert_eq!(answer.map_err(|error| refusal(&error)), predicted, "{context} into {mailbox}");
        }
        Operation::ChangeFlags { account, mailbox, uids, change } => {
            let account = ACCOUNTS[*account];
            let mailbox = &model.mailbox_name(account, *mailbox, true);
            let uids = model.uids(account, mailbox, *uids);
            let answer = engine.change_flags(account, mailbox, &uids, change.clone()).await;
            same(answer, model.change_flags(account, mailbox, &uids, change), &format!("{mailbox} {uids:?}"));
        }
        Operation::Copy { account, from, to, uids, remove_source } => {
            let account = ACCOUNTS[*account];
            let (from, to) = (&model.mailbox_name(account, *from, true), &model.mailbox_name(account, *to, false));
            let uids = model.uids(account, from, *uids);
            let answer = if *remove_source {
                engine.move_messages(account, from, &uids, to).await
            } else {
                engine.copy(account, from, &uids, to).await
            };
            let predicted = model.copy(account, from, to, &uids, *remove_source);
            assert_eq!(answer.map_err(|error| refusal(&error)), predicted, "{context}: {from} {uids:?} to {to}");
        }
        Operation::Expunge { account, mailbox, uids } => {
            let account = ACCOUNTS[*account];
            let mailbox = &model.mailbox_name(account, *mailbox, true);
            let uids = model.uids(account, mailbox, *uids);
            let answer = engine.expunge(account, mailbox, &uids).await;
            same(answer, model.expunge(account, mailbox, &uids), &format!("{mailbox} {uids:?}"));
        }
        Operation::Restore { account, pick } => {
            let account = ACCOUNTS[*account];
            let candidates: Vec<DeletedMessageId> = model
                .accounts
                .get(account)
                .map(|account| account.deleted.iter().map(|deleted| deleted.id).collect())
                .unwrap_or_default();
            let id = match candidates.len() {
                _ if *pick >= 240 => DeletedMessageId { mailbox_id: 99, uid: 1 },
                0 => DeletedMessageId { mailbox_id: 1, uid: 1 },
                count => candidates[usize::from(*pick) % count],
            };
            let answer = engine.restore(account, id).await;
            assert_eq!(answer.map_err(|error| refusal(&error)), model.restore(account, id), "{context} id {id:?}");
        }
        Operation::AdvanceClock { .. } | Operation::Restart { .. } => unreachable!("handled by the runner"),
    }
}

fn run_case(token: &TestToken, operations: &[Operation]) {
    let store = Store::new(token);
    let mut model = Model { accounts: BTreeMap::new(), now_unix_ms: START_UNIX_MS };
    let mut engine = store.open();
    block_on(async {
        for account in &ACCOUNTS[..2] {
            engine.create_account(account).await.unwrap();
            model.create_account(account).unwrap();
        }
        let stats = engine.stats().await.unwrap();
        assert!(stats.iter().all(|shard| shard.accounts == 1), "one account per shard: {stats:?}");
    });
    for (step, operation) in operations.iter().enumerate() {
        let context = format!("step {step}: {operation:?}");
        match operation {
            Operation::AdvanceClock { hours } => {
                store.clock.advance_ms(hours * 3600 * 1000);
                model.now_unix_ms += hours * 3600 * 1000;
            }
            Operation::Restart { keep_checkpoint } => {
                drop(engine);
                if !keep_checkpoint {
                    store.remove_checkpoints();
                }
                engine = store.open();
                block_on(assert_same_state(&engine, &model, true, &context));
            }
            operation => block_on(async {
                apply(&engine, &mut model, operation, step).await;
                assert_same_state(&engine, &model, false, &context).await;
            }),
        }
    }
    block_on(assert_same_state(&engine, &model, true, "at the end"));
    drop(engine);
    let engine = store.open();
    block_on(assert_same_state(&engine, &model, true, "after the final restart"));
}

#[test]
fn the_engine_matches_a_model_over_random_operations_and_restarts() {
    let token = TestToken::create_with_keys();
    let _session = token.hsm.session().unwrap(); // stays logged in across opens
    let mut runner = TestRunner::new(Config { cases: CASES, max_shrink_iters: 256, ..Config::default() });
    let started = std::time::Instant::now();
    let result = runner.run(&vec(operation(), 1..=OPERATIONS_MAX), |operations| {
        run_case(&token, &operations);
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    eprintln!("{CASES} cases of up to {OPERATIONS_MAX} operations in {:?}", started.elapsed());
}
