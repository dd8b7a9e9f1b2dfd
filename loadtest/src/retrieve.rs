//! The retrieval phases: every account's mailbox read back over POP3 or IMAP, each message
//! checked against what was delivered. Threads take the next account, so a phase uses at most
//! min(connections, accounts) connections, one per mailbox at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use crate::endpoint::Endpoint;
use crate::error::ClientError;
use crate::imap::ImapClient;
use crate::phase::{self, PhaseClock, PhaseReport, Recorder};
use crate::plan::Plan;
use crate::pop3::Pop3Client;
use crate::verify::{Check, Verifier};

/// A protocol that can list a mailbox and fetch its messages by a stable key.
trait Mailbox: Sized {
    const NAME: &'static str;

    fn endpoint(plan: &Plan) -> &Endpoint;
    /// Connects and logs in.
    fn open(plan: &Plan, user: &str, password: &str) -> Result<Self, ClientError>;
    /// The keys of every message (POP3 message numbers, IMAP uids).
    fn list(&mut self) -> Result<Vec<u32>, ClientError>;
    fn fetch(&mut self, key: u32, out: &mut Vec<u8>) -> Result<(), ClientError>;
    fn close(self);
}

impl Mailbox for Pop3Client {
    const NAME: &'static str = "retrieve/pop3";

    fn endpoint(plan: &Plan) -> &Endpoint {
        &plan.pop3
    }

    fn open(plan: &Plan, user: &str, password: &str) -> Result<Self, ClientError> {
        let mut client = Self::connect(&plan.pop3, plan.tls.as_ref(), plan.timeout)?;
        client.login(user, password)?;
        Ok(client)
    }

    fn list(&mut self) -> Result<Vec<u32>, ClientError> {
        Ok((1..=self.stat()?).collect())
    }

    fn fetch(&mut self, key: u32, out: &mut Vec<u8>) -> Result<(), ClientError> {
        self.retr(key, out)
    }

    fn close(self) {
        self.quit();
    }
}

impl Mailbox for ImapClient {
    const NAME: &'static str = "retrieve/imap";

    fn endpoint(plan: &Plan) -> &Endpoint {
        &plan.imap
    }

    fn open(plan: &Plan, user: &str, password: &str) -> Result<Self, ClientError> {
        let mut client = Self::connect(&plan.imap, plan.tls.as_ref(), plan.timeout)?;
        client.login(user, password)?;
        client.examine("INBOX")?;
        Ok(client)
    }

    fn list(&mut self) -> Result<Vec<u32>, ClientError> {
        self.uid_search_all()
    }

    fn fetch(&mut self, key: u32, out: &mut Vec<u8>) -> Result<(), ClientError> {
        *out = self.fetch_body(key)?;
        Ok(())
    }

    fn close(self) {
        self.logout();
    }
}

/// Messages per command in `retrieve/imap-batch`.
pub const IMAP_BATCH_MESSAGES: usize = 50;

/// IMAP as a client syncing a mailbox for offline use reads it: `UID FETCH` of
/// [`IMAP_BATCH_MESSAGES`] messages per command. A message's latency is the time until its
/// batch was read whole (the first of each batch waits for all of it; the rest for nothing).
struct ImapBatches {
    client: ImapClient,
    uids: Vec<u32>,
    fetched: HashMap<u32, Vec<u8>>,
}

impl Mailbox for ImapBatches {
    const NAME: &'static str = "retrieve/imap-batch";

    fn endpoint(plan: &Plan) -> &Endpoint {
        &plan.imap
    }

    fn open(plan: &Plan, user: &str, password: &str) -> Result<Self, ClientError> {
        let client = <ImapClient as Mailbox>::open(plan, user, password)?;
        Ok(Self { client, uids: Vec::new(), fetched: HashMap::new() })
    }

    fn list(&mut self) -> Result<Vec<u32>, ClientError> {
        self.uids = self.client.uid_search_all()?;
        Ok(self.uids.clone())
    }

    fn fetch(&mut self, key: u32, out: &mut Vec<u8>) -> Result<(), ClientError> {
        if !self.fetched.contains_key(&key) {
            let from = self.uids.iter().position(|uid| *uid == key).unwrap_or(self.uids.len());
            let batch = &self.uids[from..(from + IMAP_BATCH_MESSAGES).min(self.uids.len())];
            self.fetched = self.client.fetch_bodies(batch)?.into_iter().collect();
        }
        *out = self.fetched.remove(&key).ok_or_else(|| {
            ClientError::malformed("IMAP", format!("no BODY[] for uid {key} in its batch").as_bytes())
        })?;
        Ok(())
    }

    fn close(self) {
        self.client.logout();
    }
}

/// Which protocol to read back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Pop3,
    /// One message per `UID FETCH`, as a client opens mail.
    Imap,
    /// Many messages per `UID FETCH`, as a client syncs a mailbox.
    ImapBatch,
}

/// Reads every mailbox back over `protocol`; `acknowledged` says which messages were delivered.
pub fn retrieve(plan: &Plan, protocol: Protocol, acknowledged: &[bool]) -> PhaseReport {
    match protocol {
        Protocol::Pop3 => run::<Pop3Client>(plan, acknowledged),
        Protocol::Imap => run::<ImapClient>(plan, acknowledged),
        Protocol::ImapBatch => run::<ImapBatches>(plan, acknowledged),
    }
}

fn run<M: Mailbox>(plan: &Plan, acknowledged: &[bool]) -> PhaseReport {
    let verifier = Verifier::new(&plan.corpus, &plan.accounts, acknowledged);
    let next = AtomicU32::new(0);
    let expected = acknowledged.iter().filter(|delivered| **delivered).count() as u64;
    let connections = plan.connections.min(plan.accounts.count as usize).max(1);
    let bar = phase::progress_bar(plan.progress, M::NAME, expected);
    let clock = PhaseClock::start(&plan.server_pids);
    let recorded = phase::run_workers(connections, |_, recorder| {
        loop {
            let owner = next.fetch_add(1, Ordering::Relaxed);
            if owner >= plan.accounts.count {
                break;
            }
            read_mailbox::<M>(plan, owner, &verifier, recorder, &bar);
        }
    });
    bar.finish_and_clear();
    let mut report = clock.finish(M::NAME, &M::endpoint(plan).to_string(), connections, recorded);
    let verification = verifier.finish();
    if verification.errors() > 0 {
        report.errors.insert("verify".to_owned(), verification.errors());
        report.error_examples.extend(verification.examples.iter().cloned());
    }
    report.verification = Some(verification);
    report
}

/// Sessions opened for one mailbox before giving up on the rest of it.
const SESSION_ATTEMPTS_MAX: u32 = 3;

fn read_mailbox<M: Mailbox>(
    plan: &Plan,
    owner: u32,
    verifier: &Verifier<'_>,
    recorder: &mut Recorder,
    bar: &indicatif::ProgressBar,
) {
    let user = plan.accounts.user(owner);
    let password = plan.accounts.password(owner);
    let mut attempts = 0;
    let mut done = 0; // keys handled so far (they are stable across sessions: nothing is deleted)
    let mut body = Vec::new();
    while attempts < SESSION_ATTEMPTS_MAX {
        attempts += 1;
        let started = Instant::now();
        let opened = M::open(plan, &user, &password).and_then(|mut session| Ok((session.list()?, session)));
        let (keys, mut session) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                recorder.error(&format!("{user}: session"), &error);
                continue;
            }
        };
        recorder.session_latencies.record(started.elapsed());
        recorder.sessions += 1;
        let mut failed = false;
        for key in keys.iter().skip(done) {
            let started = Instant::now();
            if let Err(error) = session.fetch(*key, &mut body) {
                recorder.error(&format!("{user}: message {key}"), &error);
                failed = true;
                break;
            }
            recorder.latencies.record(started.elapsed());
            done += 1;
            let check = verifier.check(owner, &body);
            if let Check::Match { bytes, .. } = check {
                recorder.messages += 1;
                recorder.bytes += bytes as u64;
                bar.inc(1);
            }
        }
        if !failed {
            session.close();
            return;
        }
    }
}
