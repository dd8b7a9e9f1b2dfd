//! Running a phase on C threads and what a phase reports: throughput, latency, errors, CPU.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cpu;
use crate::error::ClientError;
use crate::latency::{Latencies, LatencySummary};
use crate::verify::Verification;

/// Error descriptions kept per phase.
const ERROR_EXAMPLES_MAX: usize = 10;

/// What one worker thread measured.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Per message: one delivery, or one fetch.
    pub latencies: Latencies,
    /// Per session: connect, TLS, login (and mailbox listing when retrieving).
    pub session_latencies: Latencies,
    pub messages: u64,
    pub bytes: u64,
    pub sessions: u64,
    errors: BTreeMap<&'static str, u64>,
    examples: Vec<String>,
}

impl Recorder {
    /// Counts an error; `context` says which message or account.
    pub fn error(&mut self, context: &str, error: &ClientError) {
        self.error_kind(error.kind(), format!("{context}: {error}"));
    }

    pub fn error_kind(&mut self, kind: &'static str, description: String) {
        *self.errors.entry(kind).or_default() += 1;
        if self.examples.len() < ERROR_EXAMPLES_MAX {
            self.examples.push(description);
        }
    }

    fn merge(&mut self, other: Self) {
        self.latencies.merge(other.latencies);
        self.session_latencies.merge(other.session_latencies);
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.sessions += other.sessions;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        let room = ERROR_EXAMPLES_MAX.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }
}

/// One phase's results.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PhaseReport {
    /// `deliver/lmtp`, `retrieve/pop3`, `retrieve/imap` or `retrieve/imap-batch`.
    pub name: String,
    pub endpoint: String,
    pub connections: usize,
    /// Messages delivered or retrieved successfully.
    pub messages: u64,
    /// Message bytes as sent or received (without protocol framing).
    pub bytes: u64,
    pub seconds: f64,
    pub messages_per_second: f64,
    /// Decimal megabytes (10^6 bytes) per second.
    pub megabytes_per_second: f64,
    pub latency: LatencySummary,
    pub sessions: u64,
    pub session_latency: LatencySummary,
    /// CPU seconds of the server process tree during the phase (with `--server-pid`).
    pub server_cpu_seconds: Option<f64>,
    pub messages_per_server_cpu_second: Option<f64>,
    /// CPU seconds of this load generator during the phase.
    pub client_cpu_seconds: f64,
    /// Protocol errors by kind, and verification errors under `verify`.
    pub errors: BTreeMap<String, u64>,
    pub error_examples: Vec<String>,
    pub verification: Option<Verification>,
}

impl PhaseReport {
    /// Every error of the phase, protocol and verification.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Clocks and CPU meters started at the beginning of a phase.
#[derive(Debug)]
pub struct PhaseClock {
    started: Instant,
    server_cpu: Option<f64>,
    client_cpu: f64,
    server_pids: Vec<u32>,
}

impl PhaseClock {
    pub fn start(server_pids: &[u32]) -> Self {
        let server_cpu = server_cpu(server_pids);
        Self {
            started: Instant::now(),
            server_cpu,
            client_cpu: cpu::own_cpu_seconds(),
            server_pids: server_pids.to_vec(),
        }
    }

    /// The report of a phase that ran since [`start`](Self::start).
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    pub fn finish(self, name: &str, endpoint: &str, connections: usize, recorded: Recorder) -> PhaseReport {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let server_cpu_seconds = match (self.server_cpu, server_cpu(&self.server_pids)) {
            (Some(before), Some(after)) => Some((after - before).max(0.0)),
            _ => None,
        };
        PhaseReport {
            name: name.to_owned(),
            endpoint: endpoint.to_owned(),
            connections,
            messages: recorded.messages,
            bytes: recorded.bytes,
            seconds,
            messages_per_second: recorded.messages as f64 / seconds,
            megabytes_per_second: recorded.bytes as f64 / seconds / 1e6,
            latency: recorded.latencies.summary(),
            sessions: recorded.sessions,
            session_latency: recorded.session_latencies.summary(),
            server_cpu_seconds,
            messages_per_server_cpu_second: server_cpu_seconds
                .filter(|cpu| *cpu > 0.0)
                .map(|cpu| recorded.messages as f64 / cpu),
            client_cpu_seconds: (cpu::own_cpu_seconds() - self.client_cpu).max(0.0),
            errors: recorded.errors.into_iter().map(|(kind, count)| (kind.to_owned(), count)).collect(),
            error_examples: recorded.examples,
            verification: None,
        }
    }
}

fn server_cpu(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    match cpu::tree_cpu_seconds(pids) {
        Ok(seconds) => Some(seconds),
        Err(error) => {
            eprintln!("server CPU: {error}");
            None
        }
    }
}

/// Runs `worker` on `threads` threads (each gets its number and a recorder) and merges what
/// they recorded.
pub fn run_workers<F>(threads: usize, worker: F) -> Recorder
where
    F: Fn(usize, &mut Recorder) + Sync,
{
    let mut total = Recorder::default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|number| {
                let worker = &worker;
                scope.spawn(move || {
                    let mut recorder = Recorder::default();
                    worker(number, &mut recorder);
                    recorder
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(recorder) => total.merge(recorder),
                Err(_) => total.error_kind("panic", "a worker thread panicked".to_owned()),
            }
        }
    });
    total
}

/// A progress bar on standard error (hidden when `enabled` is false or stderr is no terminal).
pub fn progress_bar(enabled: bool, name: &str, total: u64) -> ProgressBar {
    let target = if enabled { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    let style =
        ProgressStyle::with_template("{prefix:>15} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(name.to_owned());
    if enabled {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    bar
}
