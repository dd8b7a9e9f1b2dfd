//! `account password|app-password|logout|access-log`: credentials and sessions of one account.
//! Passwords come from the environment or standard input, never from the command line (where
//! every user of the machine could read them in the process list).

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::Context as _;
use clap::Subcommand;
use mailvault_frontends::admin::AdminCommand;
use mailvault_hsm::password::PASSWORD_BYTES_MAX;
use zeroize::Zeroizing;

use super::{Context, admin_command};

/// The environment variable `account password` reads the new password from, if set.
const NEW_PASSWORD_VARIABLE: &str = "MAILVAULT_NEW_PASSWORD";

#[derive(Debug, Subcommand)]
pub(crate) enum AppPasswordCommand {
    /// Create an app password for one device; it is printed once and never again.
    Add {
        /// The account (its address, as created with `account add`).
        account: String,
        /// A name for the device, shown in the access log ("phone", say).
        label: String,
    },
}

/// Reads the new password: `MAILVAULT_NEW_PASSWORD`, or one line of standard input (without
/// echo on a terminal).
fn read_new_password() -> anyhow::Result<Zeroizing<String>> {
    if let Ok(password) = std::env::var(NEW_PASSWORD_VARIABLE) {
        return Ok(Zeroizing::new(password));
    }
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let echo = if terminal {
        eprint!("new password: ");
        std::io::stderr().flush()?;
        disable_echo(&stdin)
    } else {
        None
    };
    let mut line = Zeroizing::new(String::new());
    let read = stdin.lock().take((PASSWORD_BYTES_MAX + 2) as u64).read_line(&mut line);
    if let Some(saved) = echo {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &saved);
        eprintln!();
    }
    read.context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "no password given (standard input or {NEW_PASSWORD_VARIABLE})");
    Ok(Zeroizing::new(password.to_owned()))
}

/// Turns terminal echo off; returns the settings to restore.
fn disable_echo(stdin: &std::io::Stdin) -> Option<rustix::termios::Termios> {
    let saved = rustix::termios::tcgetattr(stdin).ok()?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
    rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &quiet).ok()?;
    Some(saved)
}

pub(crate) fn set_password(context: &Context, account: String) -> anyhow::Result<()> {
    let password = read_new_password()?;
    admin_command::run(context, AdminCommand::AccountPassword { account, password: password.to_string() })
}

pub(crate) fn app_password(context: &Context, command: AppPasswordCommand) -> anyhow::Result<()> {
    match command {
        AppPasswordCommand::Add { account, label } => {
            admin_command::run(context, AdminCommand::AppPasswordAdd { account, label })
        }
    }
}

pub(crate) fn logout(context: &Context, account: String) -> anyhow::Result<()> {
    admin_command::run(context, AdminCommand::Logout { account })
}

pub(crate) fn access_log(context: &Context, account: String, limit: usize) -> anyhow::Result<()> {
    admin_command::run(context, AdminCommand::AccessLog { account, limit })
}
