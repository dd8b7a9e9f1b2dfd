//! `keys status|rotate`: the HSM key hierarchy.

use anyhow::Context as _;
use clap::Subcommand;

use super::Context;

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// KEK versions on the token and which keys exist.
    Status,
    /// Create the next KEK version; new data keys are wrapped under it. (Re-wrapping existing
    /// data keys and destroying the old version come with account purge.)
    Rotate,
}

pub(crate) fn run(context: &Context, command: &KeysCommand) -> anyhow::Result<()> {
    let hsm = context.hsm()?;
    let session = hsm.session()?;
    match command {
        KeysCommand::Status => {
            let status = session.status().context("reading key status")?;
            let versions: Vec<String> = status.kek_versions.iter().map(|version| format!("v{version}")).collect();
            println!("token:            {}", hsm.token_label());
            println!("KEK versions:     {}", if versions.is_empty() { "none".to_owned() } else { versions.join(", ") });
            println!(
                "current KEK:      {}",
                status.current_kek.map_or("none".to_owned(), |version| format!("v{version}"))
            );
            println!("credential key:   {}", if status.credential_key { "present" } else { "missing" });
            println!("manifest key:     {}", if status.manifest_key { "present" } else { "missing" });
        }
        KeysCommand::Rotate => {
            let version = session.rotate_kek().context("rotating the KEK")?;
            println!("KEK v{version} created; new data keys are wrapped under it");
        }
    }
    Ok(())
}
