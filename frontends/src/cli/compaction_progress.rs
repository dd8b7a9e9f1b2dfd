//! While `mailvault compact` or `account prune` waits for compaction, a line on standard error
//! says which segment each shard is rewriting, how far it got and what has been reclaimed, so
//! a long rewrite visibly moves. It asks the shards' cheap `compaction_status` a few times a
//! second (not their stats, which walk every message): of the engine the CLI opened, or of the
//! running server through its admin socket. Hidden, and nothing asked, when standard error is
//! no terminal, as in tests and scripts.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use futures_util::future::{Either, select};
use indicatif::{ProgressBar, ProgressStyle};
use mailvault_engine::{CompactionStatus, Engine};
use mailvault_frontends::admin::{self, AdminCommand, AdminReply};

/// How often the line is refreshed.
const REFRESH_INTERVAL: Duration = Duration::from_millis(250);

fn progress_line() -> ProgressBar {
    let line = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template("{spinner} compacting ({elapsed}): {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    line.set_style(style);
    line
}

/// Runs `compaction` (a future that waits for the engine's compaction) with the progress line
/// beside it; returns its output.
pub(crate) async fn showing_progress<T>(engine: &Engine, compaction: impl Future<Output = T>) -> T {
    let line = progress_line();
    let start = if line.is_hidden() { None } else { engine.compaction_status().await.ok() };
    let mut compaction = pin!(compaction);
    loop {
        match select(compaction.as_mut(), pin!(compio::time::sleep(REFRESH_INTERVAL))).await {
            Either::Left((output, _)) => {
                line.finish_and_clear();
                return output;
            }
            Either::Right(((), _)) => {
                if let Some(start) = start.as_deref()
                    && let Ok(now) = engine.compaction_status().await
                {
                    line.set_message(describe(start, &now));
                }
                line.tick();
            }
        }
    }
}

/// Sends `command` (one that waits for compaction) to the server on `socket`, with the
/// progress line beside it, fed by `CompactionStatus` commands on connections of their own.
pub(crate) fn showing_remote_progress(socket: &Path, command: &AdminCommand) -> std::io::Result<AdminReply> {
    let line = progress_line();
    let status = || -> Option<Vec<CompactionStatus>> {
        let reply = admin::send(socket, &AdminCommand::CompactionStatus).ok()?;
        reply.ok.then(|| serde_json::from_str(&reply.output).ok()).flatten()
    };
    let start = if line.is_hidden() { None } else { status() };
    let (answered, answer) = std::sync::mpsc::channel();
    let (socket_owned, command) = (socket.to_owned(), command.clone());
    std::thread::spawn(move || {
        let _ = answered.send(admin::send(&socket_owned, &command));
    });
    loop {
        match answer.recv_timeout(REFRESH_INTERVAL) {
            Ok(reply) => {
                line.finish_and_clear();
                return reply;
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some(start) = start.as_deref()
                    && let Some(now) = status()
                {
                    line.set_message(describe(start, &now));
                }
                line.tick();
            }
            Err(RecvTimeoutError::Disconnected) => {
                line.finish_and_clear();
                return Err(std::io::Error::other("the thread waiting for the server's answer ended without one"));
            }
        }
    }
}

/// "shard 0 segment 12 45%, shard 1 between segments; 3.2 MiB reclaimed": what each shard is
/// rewriting now, and how much smaller the segments are than at `start`.
fn describe(start: &[CompactionStatus], now: &[CompactionStatus]) -> String {
    let shards: Vec<String> = now
        .iter()
        .map(|shard| match shard.compacting {
            Some(job) => {
                let percent = job.done_bytes.saturating_mul(100).checked_div(job.bytes).unwrap_or(100).min(100);
                format!("shard {} segment {} {percent}%", shard.shard_id, job.segment_id)
            }
            None => format!("shard {} between segments", shard.shard_id),
        })
        .collect();
    let before: u64 = start.iter().map(|shard| shard.segment_bytes).sum();
    let after: u64 = now.iter().map(|shard| shard.segment_bytes).sum();
    #[allow(clippy::cast_precision_loss)] // a figure for the eye
    let reclaimed_mib = before.saturating_sub(after) as f64 / (1024.0 * 1024.0);
    format!("{}; {reclaimed_mib:.1} MiB reclaimed", shards.join(", "))
}

#[cfg(test)]
mod tests {
    use mailvault_engine::CompactionProgress;

    use super::*;

    fn status(shard_id: u32, compacting: Option<CompactionProgress>, segment_bytes: u64) -> CompactionStatus {
        CompactionStatus { shard_id, compacting, segment_bytes }
    }

    #[test]
    fn the_line_names_each_shards_segment_and_what_was_reclaimed() {
        let start = [status(0, None, 64 << 20), status(1, None, 32 << 20)];
        let job = CompactionProgress { segment_id: 12, bytes: 200, done_bytes: 90 };
        let now = [status(0, Some(job), (64 << 20) - (3 << 19)), status(1, None, 32 << 20)];
        assert_eq!(describe(&start, &now), "shard 0 segment 12 45%, shard 1 between segments; 1.5 MiB reclaimed");
    }

    #[test]
    fn segments_that_grew_and_empty_jobs_give_no_nonsense() {
        let start = [status(0, None, 1 << 20)];
        let empty = CompactionProgress { segment_id: 3, bytes: 0, done_bytes: 0 };
        let now = [status(0, Some(empty), 2 << 20)];
        assert_eq!(describe(&start, &now), "shard 0 segment 3 100%; 0.0 MiB reclaimed");
    }
}
