//! Command-line parsing and dispatch. Each subcommand lives in its own file.

mod account;
mod admin_command;
mod backup;
mod compaction_progress;
mod context;
mod credentials;
mod keys;
mod mailbox;
mod message;
mod scrub;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub(crate) use backup::ExitWith;
pub(crate) use context::Context;

/// mailvault: an encrypted mail store whose keys live in an HSM.
///
/// HSM settings come from the environment, never the command line: `MAILVAULT_HSM_MODULE`
/// (default /usr/lib/softhsm/libsofthsm2.so), `MAILVAULT_HSM_TOKEN` (default "mailvault"),
/// `MAILVAULT_HSM_PIN` or `MAILVAULT_HSM_PIN_FILE` (default: hsm-pin beside the data directory),
/// and `SOFTHSM2_CONF` for `SoftHSM`. `scripts/mailvault` sets all of them for the embedded default.
#[derive(Debug, Parser)]
#[command(name = "mailvault", version, about, long_about)]
pub(crate) struct Arguments {
    /// The store directory.
    #[arg(long, global = true, env = "MAILVAULT_DATA_DIR", default_value = ".mailvault/data")]
    data_dir: PathBuf,
    /// Open the store even if a shard's data fails verification: that shard is quarantined (its
    /// files are left as they are, and every request for its accounts is refused with an error
    /// naming the damage) while the other shards serve. Without it, damage stops the open.
    #[arg(long, global = true)]
    quarantine_corrupt_shards: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a store (idempotent) and the HSM keys it needs.
    Init {
        /// Engine shards, one per core by default.
        #[arg(long)]
        shards: Option<usize>,
    },
    /// Run the server: init on first run, open the store, listen (LMTP, POP3, IMAP, TLS, the
    /// admin socket) until SIGTERM or Ctrl-C.
    Serve(serve::ServeArguments),
    /// Accounts: add, list, deleted mail (restore, prune), passwords, app passwords, logout, access log.
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Mailboxes of an account: list, create, rename, delete, show messages.
    #[command(subcommand)]
    Mailbox(mailbox::MailboxCommand),
    /// Store a message file (or `-` for standard input) in a mailbox; prints its uid.
    Append(message::AppendArguments),
    /// Print a message's bytes to standard output.
    Cat(message::CatArguments),
    /// Per-shard statistics, and per segment: bytes, live and retained message bytes, the rest.
    Stats,
    /// Rewrite every segment whose live share fell below the ratio (the server also does this
    /// in the background); prints what was reclaimed.
    Compact,
    /// HSM keys: status, rotate.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Backups to a directory or an S3 bucket: run, verify, restore.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Read every sealed segment of the store and check it: each frame's CRC, each footer and
    /// its digest, every record's AEAD tag under its account's key (from the HSM). Read-only,
    /// no lock: runs beside a server. Finds bit rot in segments nothing else reads (a backup
    /// copies a segment once; compaction reads only its victims) while a backup still holds a
    /// good copy to repair from. The server also scrubs by itself (`serve
    /// --scrub-interval-days`, weekly); this checks now.
    ///
    /// Prints "damaged: shard N segment FILE: what" per damaged segment, then a summary.
    /// Exit codes: 0 = intact; 3 = damaged; 1 = could not check.
    #[command(verbatim_doc_comment)]
    Scrub,
}

pub(crate) fn run(arguments: Arguments) -> anyhow::Result<()> {
    let mut context = Context::new(arguments.data_dir);
    context.quarantine_corrupt_shards = arguments.quarantine_corrupt_shards;
    let done = |result: anyhow::Result<()>| result.map(|()| 0);
    // Backup, verify and scrub say intact / different / damaged by their exit code.
    let code = match arguments.command {
        Command::Init { shards } => done(serve::init(&context, shards).map(drop)),
        Command::Serve(arguments) => done(serve::serve(&context, &arguments)),
        Command::Account(command) => done(account::run(&context, command)),
        Command::Mailbox(command) => done(mailbox::run(&context, command)),
        Command::Append(append) => done(message::append(&context, append)),
        Command::Cat(cat) => done(message::cat(&context, cat)),
        Command::Stats => done(admin_command::run(&context, mailvault_frontends::admin::AdminCommand::Stats)),
        Command::Compact => done(admin_command::run(&context, mailvault_frontends::admin::AdminCommand::Compact)),
        Command::Keys(command) => done(keys::run(&context, &command)),
        Command::Backup(command) => backup::run(&context, command),
        Command::Scrub => scrub::run(&context),
    }?;
    match code {
        0 => Ok(()),
        code => Err(anyhow::Error::new(backup::ExitWith(code))),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Arguments;

    /// Every command, subcommand and argument below `command`, named by its path, that
    /// `--help` would show without a word of explanation.
    fn unexplained(command: &clap::Command, path: &str, found: &mut Vec<String>) {
        if command.get_about().is_none() && command.get_name() != "help" {
            found.push(format!("command `{path}`"));
        }
        for argument in command.get_arguments() {
            let id = argument.get_id().as_str();
            if argument.get_help().is_none() && !matches!(id, "help" | "version") {
                found.push(format!("argument `{id}` of `{path}`"));
            }
        }
        for subcommand in command.get_subcommands() {
            unexplained(subcommand, &format!("{path} {}", subcommand.get_name()), found);
        }
    }

    #[test]
    fn help_explains_every_command_and_argument() {
        let mut found = Vec::new();
        unexplained(&Arguments::command(), "mailvault", &mut found);
        assert!(found.is_empty(), "no help text for:\n{}", found.join("\n"));
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Arguments::command().debug_assert();
    }
}
