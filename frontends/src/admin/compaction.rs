//! `compact` and `account prune`, and the compaction status the CLI's progress line polls
//! while it waits for them (beside a server, over separate admin connections).

use mailvault_engine::{CompactionReport, Engine};

use super::execute::AdminError;

pub(super) async fn compact(engine: &Engine) -> Result<String, AdminError> {
    Ok(describe_compaction(&engine.compact().await?))
}

pub(super) async fn prune(engine: &Engine, account: &str) -> Result<String, AdminError> {
    let pruned = engine.prune_deleted(account).await?;
    let report = engine.compact().await?;
    Ok(format!("pruned {pruned} deleted messages of {account}; {}", describe_compaction(&report)))
}

pub(super) async fn status(engine: &Engine) -> Result<String, AdminError> {
    let status = engine.compaction_status().await?;
    serde_json::to_string(&status).map_err(|error| AdminError::Invalid(error.to_string()))
}

/// What a compaction run did, for the operator; says so when a backup held it back, or a full
/// disk stopped it.
fn describe_compaction(report: &CompactionReport) -> String {
    let mut text =
        format!("rewrote {} segments, reclaimed {} bytes", report.segments_compacted, report.bytes_reclaimed);
    if report.held_for_backup {
        text.push_str("; a backup in progress holds compaction back: it runs once the backup ends");
    }
    if report.out_of_space {
        text.push_str(
            "; stopped for want of disk space: compaction copies live mail before it frees a segment, \
             so free some space on the store's filesystem and run it again",
        );
    }
    if report.rewrite_unrecorded {
        text.push_str(
            "; the segments still to rewrite for a prune could not be written down (compaction-forced): \
             until they are (the server tries again at each commit), a restart would leave the pruned \
             mail's ciphertext to ordinary compaction, so free some space before restarting",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_and_an_unrecorded_rewrite_are_both_told() {
        let report = CompactionReport { out_of_space: true, rewrite_unrecorded: true, ..Default::default() };
        let text = describe_compaction(&report);
        assert!(text.contains("stopped for want of disk space"), "{text}");
        assert!(text.contains("could not be written down"), "{text}");
        let done = describe_compaction(&CompactionReport { segments_compacted: 2, ..Default::default() });
        assert!(!done.contains("written down") && !done.contains("disk space"), "{done}");
    }
}
