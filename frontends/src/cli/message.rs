//! `append` and `cat`: admin commands (they also work while the server runs, through its
//! admin socket).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use mailvault_frontends::admin::AdminCommand;

use super::{Context, admin_command};

#[derive(Debug, Args)]
pub(crate) struct AppendArguments {
    /// The account (its address, as created with `account add`).
    account: String,
    /// The message file (RFC 5322), or `-` for standard input.
    file: PathBuf,
    /// The mailbox to store it in.
    #[arg(long, default_value = "INBOX")]
    mailbox: String,
}

#[derive(Debug, Args)]
pub(crate) struct CatArguments {
    /// The account (its address, as created with `account add`).
    account: String,
    /// The mailbox (INBOX, say).
    mailbox: String,
    /// The message's uid, as `append` or `mailbox messages` prints it.
    uid: u32,
}

pub(crate) fn append(context: &Context, arguments: AppendArguments) -> anyhow::Result<()> {
    let message = if arguments.file.as_os_str() == "-" {
        let mut message = Vec::new();
        std::io::stdin().read_to_end(&mut message).context("reading standard input")?;
        message
    } else {
        std::fs::read(&arguments.file).with_context(|| format!("reading {}", arguments.file.display()))?
    };
    admin_command::run(context, AdminCommand::append(arguments.account, arguments.mailbox, message))
}

pub(crate) fn cat(context: &Context, arguments: CatArguments) -> anyhow::Result<()> {
    let CatArguments { account, mailbox, uid } = arguments;
    admin_command::run(context, AdminCommand::Cat { account, mailbox, uid })
}
