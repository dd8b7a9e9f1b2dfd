//! `stats`: per shard, its counts, its segments (bytes, live and retained message bytes, the
//! rest), the segment compaction is rewriting, the spare segment files kept for reuse, a full
//! disk, and the background scrub's progress and findings.
//! Run by the server for `mailvault stats` beside it (admin socket), or by the CLI on a store no
//! server has open.

use std::fmt::Write as _;

use mailvault_engine::{Engine, ShardStats};

use super::execute::AdminError;
use super::time::format_unix_ms;

pub(super) async fn stats(engine: &Engine) -> Result<String, AdminError> {
    let shards = engine.stats().await?;
    let mut output = String::new();
    let _ = writeln!(
        output,
        "{:>5} {:>9} {:>9} {:>8} {:>9} {:>8}",
        "shard", "accounts", "messages", "deleted", "segments", "commits"
    );
    for shard in &shards {
        let _ = writeln!(
            output,
            "{:>5} {:>9} {:>9} {:>8} {:>9} {:>8}",
            shard.shard_id, shard.accounts, shard.messages, shard.deleted_messages, shard.segments, shard.commits
        );
    }
    let _ = writeln!(output);
    let _ = write!(
        output,
        "{:>5} {:>8} {:>12} {:>12} {:>12} {:>12}  retained until",
        "shard", "segment", "bytes", "live", "retained", "other"
    );
    for shard in &shards {
        for segment in &shard.segment_details {
            // Headers, metadata records and dead bodies: compaction decides which are current.
            let other = segment.bytes.saturating_sub(segment.live_bytes + segment.retained_bytes);
            let until = segment.retained_until_unix_ms.map_or_else(String::new, format_unix_ms);
            let active = if segment.active { " (active)" } else { "" };
            let _ = write!(
                output,
                "\n{:>5} {:>8} {:>12} {:>12} {:>12} {:>12}  {until}{active}",
                shard.shard_id, segment.segment_id, segment.bytes, segment.live_bytes, segment.retained_bytes, other
            );
        }
    }
    for shard in &shards {
        if let Some(progress) = shard.compacting {
            let _ = write!(
                output,
                "\nshard {}: compacting segment {} ({} of {} bytes gone through)",
                shard.shard_id, progress.segment_id, progress.done_bytes, progress.bytes
            );
        }
        if let Some(since) = shard.out_of_space_since_unix_ms {
            let _ = write!(
                output,
                "\nshard {}: out of disk space since {}: deliveries and other writes that need room are refused \
                 until space is freed (docs/operations.md §7)",
                shard.shard_id,
                format_unix_ms(since)
            );
        }
        if shard.spare_segment_files > 0 {
            let _ = write!(
                output,
                "\nshard {}: {} compacted segment files ({} bytes) kept for new segments to be written over",
                shard.shard_id, shard.spare_segment_files, shard.spare_segment_bytes
            );
        }
        describe_scrub(&mut output, shard);
    }
    Ok(output)
}

/// The scrub's lines: the pass under way or the last one, and every damaged segment.
fn describe_scrub(output: &mut String, shard: &ShardStats) {
    let Some(scrub) = &shard.scrub else { return };
    let shard_id = shard.shard_id;
    if let Some(started) = scrub.pass_started_unix_ms {
        let _ = write!(output, "\nshard {shard_id}: scrub pass under way since {}", format_unix_ms(started));
    } else if let Some(pass) = scrub.last_pass {
        let _ = write!(
            output,
            "\nshard {shard_id}: last scrub pass {} to {}",
            format_unix_ms(pass.started_unix_ms),
            format_unix_ms(pass.finished_unix_ms)
        );
    }
    if scrub.segments_checked > 0 {
        let _ = write!(
            output,
            " ({} segments, {} bytes, {} frames checked since the start, {} without a key)",
            scrub.segments_checked, scrub.bytes_checked, scrub.frames_checked, scrub.frames_without_key
        );
    }
    for finding in &scrub.damaged {
        let _ = write!(
            output,
            "\nshard {shard_id}: scrub found segment {} damaged: {}",
            finding.segment_id, finding.reason
        );
    }
}
