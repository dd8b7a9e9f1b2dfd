//! Running an admin command against an engine, the same way whether the CLI opened the store
//! itself or the server received the command on its admin socket.

use std::fmt::Write as _;

use mailvault_engine::{Engine, EngineError};
use mailvault_hsm::password::{self, PASSWORD_BYTES_MAX, PasswordParams};
use mailvault_hsm::{Hsm, HsmError};
use zeroize::Zeroize;

use super::command::{AdminCommand, AdminOutput};
use super::time::format_unix_ms;
use super::{compaction, mail};
use crate::session::registry::SessionRegistry;

/// App passwords per account: each login attempt checks them all (argon2id each), so their
/// number bounds the cost of a wrong password.
pub const APP_PASSWORDS_MAX: usize = 20;
/// Characters in a generated app password, before the dashes that group them by four.
const APP_PASSWORD_CHARACTERS: usize = 16;
/// Lower-case letters and digits without the look-alikes (0/o, 1/l/i): easy to type on a phone.
const APP_PASSWORD_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    #[error("{0}")]
    Invalid(String),
}

/// Runs `command`. `registry` is the server's live sessions (none when the CLI runs the
/// command on a store no server has open).
pub async fn execute(
    command: AdminCommand,
    engine: &Engine,
    hsm: &Hsm,
    registry: Option<&SessionRegistry>,
) -> Result<AdminOutput, AdminError> {
    let text = match command {
        AdminCommand::AccountAdd { account } => {
            engine.create_account(&account).await?;
            Ok(format!("account {account} created"))
        }
        AdminCommand::AccountPassword { account, mut password } => {
            let hashed = hash(hsm, &password);
            password.zeroize();
            engine.set_password(&account, hashed?).await?;
            Ok(format!("password of {account} set"))
        }
        AdminCommand::AppPasswordAdd { account, label } => add_app_password(engine, hsm, &account, label).await,
        AdminCommand::Logout { account } => {
            let revoked = engine.revoke_app_passwords(&account).await?;
            let ended = registry.map_or(0, |registry| registry.end_account(&account));
            Ok(format!("{account} logged out: {revoked} app passwords revoked, {ended} live sessions ended"))
        }
        AdminCommand::AccessLog { account, limit } => access_log(engine, &account, limit).await,
        AdminCommand::AccountList => account_list(engine).await,
        AdminCommand::AccountClose { account, purge_after_days } => {
            let purge_at = engine.close_account(&account, purge_after_days).await?;
            let ended = registry.map_or(0, |registry| registry.end_account(&account));
            Ok(format!(
                "account {account} closed ({ended} live sessions ended); purge scheduled at {}; `account reopen` undoes it until then",
                format_unix_ms(purge_at)
            ))
        }
        AdminCommand::AccountReopen { account } => {
            engine.reopen_account(&account).await?;
            Ok(format!("account {account} reopened"))
        }
        AdminCommand::AccountPurge { account } => {
            let report = engine.purge_account(&account).await?;
            Ok(format!(
                "account {account} purged: {} data keys re-wrapped under KEK v{}, KEK versions {:?} destroyed",
                report.rewrapped_keys, report.kek_version, report.destroyed_kek_versions
            ))
        }
        AdminCommand::SealForBackup => {
            let sealed_through = engine.seal_active().await?;
            serde_json::to_string(&sealed_through).map_err(|error| AdminError::Invalid(error.to_string()))
        }
        AdminCommand::ReleaseBackupHold => {
            engine.release_backup_hold().await?;
            Ok("compaction resumed".to_owned())
        }
        AdminCommand::Stats => super::stats::stats(engine).await,
        AdminCommand::MailboxList { account } => mail::mailbox_list(engine, &account).await,
        AdminCommand::MailboxCreate { account, name } => {
            engine.create_mailbox(&account, &name).await?;
            Ok(format!("mailbox {name} of {account} created"))
        }
        AdminCommand::MailboxRename { account, from, to } => {
            engine.rename_mailbox(&account, &from, &to).await?;
            Ok(format!("mailbox {from} of {account} renamed to {to}"))
        }
        AdminCommand::MailboxDelete { account, name } => {
            engine.delete_mailbox(&account, &name).await?;
            Ok(format!(
                "mailbox {name} of {account} deleted; its messages stay restorable for the retention window \
                 (`account deleted` lists them)"
            ))
        }
        AdminCommand::MailboxMessages { account, mailbox } => mail::mailbox_messages(engine, &account, &mailbox).await,
        AdminCommand::AccountDeleted { account } => mail::deleted(engine, &account).await,
        AdminCommand::AccountRestore { account, mailbox_id, uid } => {
            mail::restore(engine, &account, mailbox_id, uid).await
        }
        AdminCommand::AccountPrune { account } => compaction::prune(engine, &account).await,
        AdminCommand::Compact => compaction::compact(engine).await,
        AdminCommand::CompactionStatus => compaction::status(engine).await,
        AdminCommand::Append { account, mailbox, message, .. } => {
            mail::append(engine, &account, &mailbox, message).await
        }
        AdminCommand::Cat { account, mailbox, uid } => return mail::cat(engine, &account, &mailbox, uid).await,
    };
    text.map(AdminOutput::from)
}

async fn account_list(engine: &Engine) -> Result<String, AdminError> {
    let mut output = format!("{:<40}  {:<6}  purge at", "account", "state");
    for state in engine.account_states().await? {
        let (status, purge_at) = match state.purge_after_unix_ms {
            Some(purge_at) => ("closed", format_unix_ms(purge_at)),
            None => ("open", "-".to_owned()),
        };
        let _ = write!(output, "\n{:<40}  {status:<6}  {purge_at}", state.name);
    }
    Ok(output)
}

fn hash(hsm: &Hsm, password: &str) -> Result<String, AdminError> {
    if password.is_empty() {
        return Err(AdminError::Invalid("the password is empty".to_owned()));
    }
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(AdminError::Invalid(format!("the password is longer than {PASSWORD_BYTES_MAX} bytes")));
    }
    let session = hsm.session()?;
    Ok(password::hash_password_peppered(&session, &PasswordParams::default(), password)?)
}

async fn add_app_password(engine: &Engine, hsm: &Hsm, account: &str, label: String) -> Result<String, AdminError> {
    let existing = engine.credentials(account).await?.app_passwords;
    if existing.len() >= APP_PASSWORDS_MAX {
        return Err(AdminError::Invalid(format!(
            "{account} already has {APP_PASSWORDS_MAX} app passwords; `account logout` revokes them"
        )));
    }
    if existing.iter().any(|app_password| app_password.label == label) {
        return Err(AdminError::Invalid(format!("{account} already has an app password labelled `{label}`")));
    }
    let mut generated = generate_app_password()?;
    let hashed = hash(hsm, &generated);
    let result = match hashed {
        Ok(hashed) => engine.add_app_password(account, label.clone(), hashed).await.map_err(AdminError::from),
        Err(error) => Err(error),
    };
    let output = result.map(|()| format!("app password `{label}` for {account} (shown only now): {generated}"));
    generated.zeroize();
    output
}

/// A new random app password: 16 characters from a 31-letter alphabet (~79 bits), grouped by
/// four with dashes.
pub fn generate_app_password() -> Result<String, AdminError> {
    let mut password = String::with_capacity(APP_PASSWORD_CHARACTERS + 3);
    let mut produced = 0;
    while produced < APP_PASSWORD_CHARACTERS {
        let mut random = [0_u8; 32];
        getrandom::fill(&mut random).map_err(|error| AdminError::Invalid(format!("no OS randomness: {error}")))?;
        // Rejection sampling: bytes past the largest multiple of the alphabet size would bias it.
        let usable = 256 - 256 % APP_PASSWORD_ALPHABET.len();
        for byte in random.iter().map(|&byte| usize::from(byte)).filter(|&byte| byte < usable) {
            if produced == APP_PASSWORD_CHARACTERS {
                break;
            }
            if produced > 0 && produced % 4 == 0 {
                password.push('-');
            }
            if let Some(&character) = APP_PASSWORD_ALPHABET.get(byte % APP_PASSWORD_ALPHABET.len()) {
                password.push(char::from(character));
                produced += 1;
            }
        }
        random.zeroize();
    }
    Ok(password)
}

async fn access_log(engine: &Engine, account: &str, limit: usize) -> Result<String, AdminError> {
    let events = engine.access_log(account, limit).await?;
    let mut output = format!("{:<23}  {:<7}  {:<5}  {:<39}  method", "time", "result", "proto", "remote ip");
    for event in events {
        let _ = write!(
            output,
            "\n{:<23}  {:<7}  {:<5}  {:<39}  {}",
            format_unix_ms(event.at_unix_ms),
            if event.success { "success" } else { "failure" },
            event.protocol,
            event.remote_ip,
            event.method
        );
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_app_passwords_have_the_documented_shape() {
        let password = generate_app_password().unwrap();
        let groups: Vec<&str> = password.split('-').collect();
        assert_eq!(groups.len(), 4);
        assert!(groups.iter().all(|group| group.len() == 4));
        assert!(password.bytes().filter(|&byte| byte != b'-').all(|byte| APP_PASSWORD_ALPHABET.contains(&byte)));
        assert_ne!(password, generate_app_password().unwrap());
    }
}
