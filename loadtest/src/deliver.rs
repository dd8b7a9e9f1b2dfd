//! The delivery phase: N messages over LMTP on C connections, each thread taking the next
//! message number, one persistent session per thread (reopened after an error).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::lmtp::LmtpClient;
use crate::phase::{self, PhaseClock, PhaseReport, Recorder};
use crate::plan::Plan;

/// Delivers every message of `plan`; returns the report and, per message, whether the server
/// acknowledged it.
pub fn deliver(plan: &Plan) -> (PhaseReport, Vec<bool>) {
    let next = AtomicU64::new(0);
    let acknowledged: Vec<AtomicBool> = (0..plan.messages).map(|_| AtomicBool::new(false)).collect();
    let bar = phase::progress_bar(plan.progress, "deliver/lmtp", plan.messages);
    let clock = PhaseClock::start(&plan.server_pids);
    let recorded = phase::run_workers(plan.connections, |_, recorder| {
        worker(plan, &next, &acknowledged, recorder, &bar);
    });
    bar.finish_and_clear();
    let report = clock.finish("deliver/lmtp", &plan.lmtp.to_string(), plan.connections, recorded);
    (report, acknowledged.into_iter().map(AtomicBool::into_inner).collect())
}

fn worker(
    plan: &Plan,
    next: &AtomicU64,
    acknowledged: &[AtomicBool],
    recorder: &mut Recorder,
    bar: &indicatif::ProgressBar,
) {
    let mut session: Option<LmtpClient> = None;
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= plan.messages {
            break;
        }
        let recipient = plan.accounts.user(plan.accounts.owner(index));
        let message = plan.corpus.message(index, &recipient);
        if session.is_none() {
            let started = Instant::now();
            match LmtpClient::connect(&plan.lmtp, plan.tls.as_ref(), plan.timeout, &plan.client_name) {
                Ok(client) => {
                    recorder.session_latencies.record(started.elapsed());
                    recorder.sessions += 1;
                    session = Some(client);
                }
                Err(error) => {
                    recorder.error(&format!("message {index}: LMTP session"), &error);
                    bar.inc(1);
                    continue;
                }
            }
        }
        let Some(client) = session.as_mut() else { continue };
        let started = Instant::now();
        match client.deliver(&plan.sender, &recipient, &message) {
            Ok(()) => {
                recorder.latencies.record(started.elapsed());
                recorder.messages += 1;
                recorder.bytes += message.len() as u64;
                if let Some(flag) = usize::try_from(index).ok().and_then(|slot| acknowledged.get(slot)) {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            Err(error) => {
                recorder.error(&format!("message {index} to {recipient}"), &error);
                session = None; // its state is unknown: start over
            }
        }
        bar.inc(1);
    }
    if let Some(client) = session {
        client.quit();
    }
}
