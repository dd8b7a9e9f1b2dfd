//! `append` and `cat`.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use mailvault_engine::{Flags, block_on};

use super::Context;

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

pub(crate) fn append(context: &Context, arguments: &AppendArguments) -> anyhow::Result<()> {
    let body = if arguments.file.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::stdin().read_to_end(&mut body).context("reading standard input")?;
        body
    } else {
        std::fs::read(&arguments.file).with_context(|| format!("reading {}", arguments.file.display()))?
    };
    let engine = context.open_engine()?;
    let uid = block_on(engine.append(&arguments.account, &arguments.mailbox, body, Flags::default(), None))?;
    println!("{uid}");
    Ok(())
}

pub(crate) fn cat(context: &Context, arguments: &CatArguments) -> anyhow::Result<()> {
    let engine = context.open_engine()?;
    let message = block_on(engine.fetch(&arguments.account, &arguments.mailbox, arguments.uid))?;
    std::io::stdout().write_all(&message.body)?;
    Ok(())
}
