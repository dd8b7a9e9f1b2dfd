//! `mailvault scrub`: every sealed segment of the store checked in place (`mailvault_backup::scrub`).

use super::context::Context;

/// Runs the scrub, prints each damaged segment and a summary; returns the process exit code.
pub(crate) fn run(context: &Context) -> anyhow::Result<u8> {
    let hsm = context.hsm()?;
    let report = mailvault_backup::scrub(&context.data_dir, &hsm)?;
    for what in &report.damaged {
        println!("damaged: {what}");
    }
    println!(
        "{} sealed segments ({} bytes), {} frames checked, {} frames without a key, {} removed by compaction meanwhile: {}",
        report.segments_checked,
        report.bytes_checked,
        report.frames_checked,
        report.frames_without_key,
        report.segments_vanished,
        if report.damaged.is_empty() { "intact" } else { "damaged" },
    );
    if !report.damaged.is_empty() {
        eprintln!(
            "mailvault: damage found. Keep a copy of each shard named; repair it with the server stopped \
             (`mailvault backup restore --from TARGET --shard N`, docs/backups.md §6.1) from a backup \
             that `backup verify --level 2` finds intact"
        );
    }
    Ok(report.exit_code())
}
