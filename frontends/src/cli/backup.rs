//! `mailvault backup run | verify | restore`: the CLI side of the backup crate. It seals the
//! active segments first, on the engine directly or through the running server's admin socket.
// Doc comments here are `--help` text, read in a terminal: no Markdown backticks or links.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use mailvault_backup::{S3Options, TargetSpec, VerifyLevel, exit_code};
use mailvault_engine::{Engine, OpenError, block_on};
use mailvault_frontends::admin::{self, AdminCommand};

use super::Context;

/// A process exit code chosen by a command (verify's verdict), not an error to print.
#[derive(Debug)]
pub(crate) struct ExitWith(pub u8);

impl std::fmt::Display for ExitWith {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "exit code {}", self.0)
    }
}

impl std::error::Error for ExitWith {}

#[derive(Debug, Subcommand)]
pub(crate) enum BackupCommand {
    /// Seal the active segments, then copy the sealed segments the target lacks, the key table
    /// (re-wrapped under the HSM backup key) and a manifest signed by the HSM. A run with
    /// nothing new copies nothing. Segments the new manifest no longer names (compacted away)
    /// are then deleted from the target.
    ///
    /// Every frame of every segment copied is checked (CRC, the sealed footer and its digest).
    /// A segment that fails is printed as "damaged: shard N segment FILE: what", is not copied,
    /// and the run writes no manifest, so the target keeps its previous backup; then repair the
    /// shard (`backup restore --shard N`, docs/backups.md §3).
    ///
    /// Exit codes: 0 = backed up; 3 = the store is damaged (nothing replaced); 1 = other errors.
    #[command(verbatim_doc_comment)]
    Run {
        /// A directory, or s3://bucket/prefix.
        #[arg(long = "to", value_name = "TARGET")]
        target: String,
        #[command(flatten)]
        s3: S3Arguments,
    },
    /// Check the newest backup on TARGET.
    ///
    /// Levels: 1 = manifest signature, every file's size and BLAKE3 digest; 2 = also every
    /// frame's CRC and every record's AEAD tag, with the backup's own keys; 3 = also replay the
    /// backup and compare it with the store (--data-dir), message by message (digest, size,
    /// flags, uid) and mailbox by mailbox (UIDVALIDITY, UIDNEXT). Each problem is printed as
    /// account/mailbox/uid or file with what differs. Never writes to the store.
    ///
    /// Exit codes: 0 = intact (and at level 3 equal); 2 = intact but different from the store;
    /// 3 = damaged (bad signature, missing or altered file, bad frame or tag); 1 = could not verify.
    #[command(verbatim_doc_comment)]
    Verify {
        /// The backup: a directory, or s3://bucket/prefix.
        #[arg(long = "from", value_name = "TARGET")]
        target: String,
        /// 1, 2 or 3.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=3))]
        level: u8,
        /// Where segments of an S3 target are downloaded for levels 2 and 3 (removed after).
        #[arg(long, default_value_os_t = std::env::temp_dir())]
        work_dir: PathBuf,
        #[command(flatten)]
        s3: S3Arguments,
    },
    /// Rebuild a store from the newest backup on TARGET into DIR (new or empty), or with
    /// --shard N only shard N of the store in --data-dir (the repair of a damaged shard; the
    /// store must not be open), then compare what was rebuilt with the backup (level 3). Exit
    /// codes as for verify. Every mailbox rebuilt gets a new UIDVALIDITY, since the lost store
    /// may have handed out uids after the backup: IMAP clients fetch their mail list anew,
    /// POP3 clients their mail.
    Restore {
        /// The backup: a directory, or s3://bucket/prefix.
        #[arg(long = "from", value_name = "TARGET")]
        target: String,
        /// The new store's directory; serve it with `mailvault --data-dir DIR serve`.
        #[arg(long = "into", value_name = "DIR", required_unless_present = "shard", conflicts_with = "shard")]
        into: Option<PathBuf>,
        /// Rebuild only this shard of the store in --data-dir. Its directory is renamed to
        /// shard-NNN.replaced-<unix ms> and kept: mail it took after the backup is only there.
        #[arg(long, value_name = "N")]
        shard: Option<u32>,
        #[command(flatten)]
        s3: S3Arguments,
    },
}

/// S3 settings; credentials come only from the environment (AWS_ACCESS_KEY_ID,
/// AWS_SECRET_ACCESS_KEY), never the command line.
#[derive(Debug, Args)]
#[allow(clippy::struct_field_names)] // the prefix names the flags: --s3-endpoint, --s3-region
pub(crate) struct S3Arguments {
    /// S3 endpoint, e.g. http://127.0.0.1:8333 (default: AWS, or AWS_ENDPOINT).
    #[arg(long, env = "MAILVAULT_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region (default: AWS_DEFAULT_REGION / AWS_REGION, else us-east-1).
    #[arg(long, env = "MAILVAULT_S3_REGION")]
    s3_region: Option<String>,
    /// Allow a plain-HTTP endpoint (loopback test servers only).
    #[arg(long)]
    s3_allow_http: bool,
}

impl S3Arguments {
    fn spec(&self, location: String) -> TargetSpec {
        let options = S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            allow_http: self.s3_allow_http,
            credentials: None,
        };
        TargetSpec::new(location, options)
    }
}

/// Runs a backup command; returns the process exit code.
pub(crate) fn run(context: &Context, command: BackupCommand) -> anyhow::Result<u8> {
    match command {
        BackupCommand::Run { target, s3 } => {
            let hsm = context.hsm()?;
            let spec = s3.spec(target);
            let mut sealer = Sealer::new(context)?;
            let mut seal =
                || sealer.seal().map_err(|error| mailvault_backup::BackupError::Invalid(format!("{error:#}")));
            let result = mailvault_backup::run_backup(&context.data_dir, &mut seal, &hsm, &spec);
            if let Err(error) = sealer.release() {
                eprintln!("mailvault: releasing the backup's hold on compaction: {error:#}");
            }
            let report = match result {
                Err(mailvault_backup::BackupError::StoreDamaged(damaged)) => {
                    for what in &damaged {
                        println!("damaged: {what}");
                    }
                    eprintln!(
                        "mailvault: the store is damaged: no manifest was written, {} keeps its previous backup. \
                         Keep a copy of each shard named, then repair it with the server stopped: `mailvault backup \
                         restore --from TARGET --shard N`, from another target that holds the segment if one does, \
                         else from this one's previous backup (the shard's mail since then stays only in the old \
                         directory the repair sets aside). Then back up again",
                        spec.location
                    );
                    return Ok(exit_code::DAMAGED);
                }
                other => other.with_context(|| format!("backing up to {}", spec.location))?,
            };
            println!(
                "copied {} segments ({} bytes, {} frames checked), {} already there, key table {}, {}, pruned {} objects",
                report.segments_copied,
                report.bytes_copied,
                report.frames_checked,
                report.segments_present,
                if report.key_table_copied { "written" } else { "unchanged" },
                report
                    .manifest
                    .as_deref()
                    .map_or_else(|| "manifest unchanged".to_owned(), |name| format!("manifest {name}")),
                report.objects_pruned,
            );
            Ok(exit_code::EQUAL)
        }
        BackupCommand::Verify { target, level, work_dir, s3 } => {
            let hsm = context.hsm()?;
            let level = VerifyLevel::from_number(level).context("level must be 1, 2 or 3")?;
            let spec = s3.spec(target);
            let compare_with = (level == VerifyLevel::Contents).then_some(context.data_dir.as_path());
            let report = mailvault_backup::verify(&spec, level, &hsm, compare_with, &work_dir)
                .with_context(|| format!("verifying {}", spec.location))?;
            for finding in &report.findings {
                match finding {
                    mailvault_backup::Finding::Damaged(what) => println!("damaged: {what}"),
                    mailvault_backup::Finding::Different(difference) => println!("different: {difference}"),
                }
            }
            println!(
                "level {}: {} segments ({} bytes), {} frames checked, {} frames without a key, {} messages compared: {:?}",
                level as u8,
                report.segments_checked,
                report.bytes_checked,
                report.frames_checked,
                report.frames_without_key,
                report.messages_compared,
                report.verdict(),
            );
            Ok(report.exit_code())
        }
        BackupCommand::Restore { target, into, shard, s3 } => {
            let hsm = context.hsm()?;
            let spec = s3.spec(target);
            let (report, what) = match (into, shard) {
                (Some(into), _) => {
                    let report = mailvault_backup::restore(&spec, &into, &hsm)
                        .with_context(|| format!("restoring {} into {}", spec.location, into.display()))?;
                    (report, "restored")
                }
                (None, Some(shard)) => {
                    let data_dir = &context.data_dir;
                    let repaired =
                        mailvault_backup::restore_shard(&spec, data_dir, shard, &hsm).with_context(|| {
                            format!("restoring shard {shard} of {} from {}", data_dir.display(), spec.location)
                        })?;
                    if let Some(set_aside) = &repaired.set_aside {
                        println!(
                            "the shard's old files were moved to {}: mail it took after the backup is only there; \
                             delete them once inspected (a prune does not reach them)",
                            set_aside.display()
                        );
                    }
                    (repaired.restore, "restored shard")
                }
                (None, None) => anyhow::bail!("give --into DIR (a new store) or --shard N (a repair)"),
            };
            print_restore_report(what, &report);
            Ok(if report.differences.is_empty() { exit_code::EQUAL } else { exit_code::DIFFERENT })
        }
    }
}

fn print_restore_report(what: &str, report: &mailvault_backup::RestoreReport) {
    for difference in &report.differences {
        println!("different: {difference}");
    }
    println!(
        "{what}: {} segments ({} bytes), {} accounts, {} messages; {}",
        report.segments_restored,
        report.bytes_restored,
        report.accounts,
        report.messages,
        if report.differences.is_empty() { "equal to the backup" } else { "DIFFERENT from the backup" }
    );
    println!(
        "{} mailboxes have a new UIDVALIDITY: IMAP clients will fetch their mail list anew, and POP3 clients \
         (whose UIDL includes it) their mail",
        report.mailboxes_renewed
    );
}

/// Seals the active segments: on the engine (kept open for the whole run) if no server has
/// the store open, else through the server's admin socket.
enum Sealer {
    Engine(Engine),
    Server(PathBuf),
}

impl Sealer {
    fn new(context: &Context) -> anyhow::Result<Self> {
        mailvault_engine::StoreMetadata::read(&context.data_dir)?;
        let hsm = context.hsm()?;
        match Engine::open(&context.engine_config(&hsm), &hsm) {
            Ok(engine) => Ok(Self::Engine(engine)),
            Err(OpenError::InUse(_)) => Ok(Self::Server(context.data_dir.join(admin::SOCKET_FILE))),
            Err(error) => Err(context.open_failed(error)),
        }
    }

    /// Lets compaction run again (it also resumes by itself after 30 minutes).
    fn release(&self) -> anyhow::Result<()> {
        match self {
            Self::Engine(engine) => Ok(block_on(engine.release_backup_hold())?),
            Self::Server(socket) => {
                let reply = admin::send(socket, &AdminCommand::ReleaseBackupHold)?;
                anyhow::ensure!(reply.ok, "{}", reply.output);
                Ok(())
            }
        }
    }

    /// Per shard, the sealed segments' ids after the seal.
    fn seal(&mut self) -> anyhow::Result<Vec<Vec<u64>>> {
        match self {
            Self::Engine(engine) => Ok(block_on(engine.seal_active())?),
            Self::Server(socket) => {
                let reply = admin::send(socket, &AdminCommand::SealForBackup).with_context(|| {
                    format!("the store is in use; asking the server at {} to seal", socket.display())
                })?;
                if !reply.ok {
                    anyhow::bail!("{}", reply.output);
                }
                serde_json::from_str(&reply.output).context("the server's answer to the seal request")
            }
        }
    }
}
