//! Password checks off the protocol cores: argon2id costs tens of milliseconds and ~19 MiB per
//! check, so a few dedicated threads, each with its own HSM session for the pepper, do them in
//! turn from a bounded queue. A core's runtime never stalls on a login.

use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use mailvault_hsm::password::{self, PasswordParams};
use mailvault_hsm::{Hsm, HsmError, HsmSession};
use zeroize::Zeroizing;

/// Checks waiting before logins wait too; bounds memory under a login flood.
pub const VERIFICATION_QUEUE_MAX: usize = 64;

/// Why a check could not be made (distinct from a wrong password).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("password verification is not running")]
    Stopped,
    #[error("no HSM session for password checks: {0}")]
    HsmUnavailable(String),
}

struct Job {
    password: Zeroizing<Vec<u8>>,
    hashes: Vec<String>,
    reply: flume::Sender<Result<Option<usize>, VerifyError>>,
}

/// The verification threads.
#[derive(Debug)]
pub struct PasswordVerifier {
    jobs: Option<flume::Sender<Job>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl PasswordVerifier {
    /// Starts `threads` verification threads on `hsm`.
    pub fn start(hsm: &Hsm, threads: usize) -> std::io::Result<Self> {
        let (jobs, receiver) = flume::bounded::<Job>(VERIFICATION_QUEUE_MAX);
        let mut handles = Vec::new();
        for index in 0..threads.max(1) {
            let hsm = hsm.clone();
            let receiver = receiver.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mailvault-verify-{index}"))
                .spawn(move || run_thread(&hsm, &receiver))?;
            handles.push(handle);
        }
        Ok(Self { jobs: Some(jobs), threads: Mutex::new(handles) })
    }

    /// Checks `password` against each hash in turn; returns the index of the first that
    /// matches. With no hashes (unknown account, no password set) it still spends one check's
    /// time, so that response times do not reveal which accounts exist.
    pub async fn verify(&self, password: &[u8], hashes: Vec<String>) -> Result<Option<usize>, VerifyError> {
        let jobs = self.jobs.as_ref().ok_or(VerifyError::Stopped)?;
        let (reply, answer) = flume::bounded(1);
        let job = Job { password: Zeroizing::new(password.to_vec()), hashes, reply };
        jobs.send_async(job).await.map_err(|_| VerifyError::Stopped)?;
        answer.recv_async().await.map_err(|_| VerifyError::Stopped)?
    }
}

impl Drop for PasswordVerifier {
    fn drop(&mut self) {
        // Closing the queue ends the threads once they finish their current check.
        self.jobs = None;
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        for thread in threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn run_thread(hsm: &Hsm, jobs: &flume::Receiver<Job>) {
    let session = hsm.session();
    // A hash of a password nobody knows, for the unknown-account path.
    let decoy = random_decoy().and_then(|decoy| password::hash_password(&PasswordParams::default(), &decoy));
    while let Ok(job) = jobs.recv() {
        let result = match &session {
            Ok(session) => Ok(check(session, &job.password, &job.hashes, decoy.as_deref().ok())),
            Err(error) => Err(VerifyError::HsmUnavailable(error.to_string())),
        };
        let _ = job.reply.send(result);
    }
}

fn check(session: &HsmSession, password: &[u8], hashes: &[String], decoy: Option<&str>) -> Option<usize> {
    // Passwords are UTF-8 text; other bytes cannot match any stored hash.
    let Ok(password) = std::str::from_utf8(password) else {
        if let Some(decoy) = decoy {
            let _ = password::verify_password("", decoy);
        }
        return None;
    };
    if hashes.is_empty() {
        if let Some(decoy) = decoy {
            let _ = password::verify_password(password, decoy);
        }
        return None;
    }
    for (index, hash) in hashes.iter().enumerate() {
        match password::verify_password_peppered(session, password, hash) {
            Ok(true) => return Some(index),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "a stored password hash cannot be checked"),
        }
    }
    None
}

fn random_decoy() -> Result<String, HsmError> {
    let mut bytes = [0_u8; 24];
    getrandom::fill(&mut bytes).map_err(|error| HsmError::Password { reason: error.to_string() })?;
    Ok(hex::encode(bytes))
}
