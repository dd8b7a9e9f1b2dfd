//! Credential and access-log mutations: password hashes, app passwords, login attempts. The
//! records are encrypted under the account's key like mail.

use crate::api::AccessEvent;
use crate::error::EngineError;
use crate::format::{HASH_BYTES_MAX, LABEL_BYTES_MAX, Record};
use crate::io::Storage;

use super::emit::Place;
use super::request::Outcome;
use super::{Batch, Shard};

fn check_length(what: &'static str, value: &str, bytes_max: usize) -> Result<(), EngineError> {
    if value.is_empty() || value.len() > bytes_max || value.chars().any(char::is_control) {
        return Err(EngineError::InvalidInput { what, reason: format!("must be 1 to {bytes_max} printable bytes") });
    }
    Ok(())
}

fn check_hash(password_hash: &str) -> Result<(), EngineError> {
    check_length("password hash", password_hash, HASH_BYTES_MAX)?;
    // Only hashes are stored: a PHC string, never a password by mistake.
    if !password_hash.starts_with("$argon2id$") {
        return Err(EngineError::InvalidInput {
            what: "password hash",
            reason: "must be an argon2id PHC string".into(),
        });
    }
    Ok(())
}

impl<S: Storage> Shard<S> {
    pub(super) fn set_password(
        &mut self,
        account: &str,
        password_hash: String,
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        check_hash(&password_hash)?;
        let (account, cipher) = self.account(account)?;
        let place = Place { account_id: account.id, mailbox_id: 0, uid: 0 };
        self.emit(batch, place, Record::PasswordSet { password_hash }, &cipher);
        Ok(Outcome::Done)
    }

    pub(super) fn add_app_password(
        &mut self,
        account: &str,
        label: String,
        password_hash: String,
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        check_length("app password label", &label, LABEL_BYTES_MAX)?;
        check_hash(&password_hash)?;
        let (account, cipher) = self.account(account)?;
        let place = Place { account_id: account.id, mailbox_id: 0, uid: 0 };
        self.emit(batch, place, Record::AppPasswordAdded { label, password_hash }, &cipher);
        Ok(Outcome::Done)
    }

    pub(super) fn revoke_app_passwords(
        &mut self,
        account: &str,
        now: i64,
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        let (account, cipher) = self.account(account)?;
        let revoked = account.app_passwords.len() as u32;
        let place = Place { account_id: account.id, mailbox_id: 0, uid: 0 };
        self.emit(batch, place, Record::AppPasswordsRevoked { at_unix_ms: now }, &cipher);
        Ok(Outcome::Count(revoked))
    }

    pub(super) fn record_access(
        &mut self,
        account: &str,
        event: AccessEvent,
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        if !event.is_valid() {
            return Err(EngineError::InvalidInput { what: "access event", reason: "a field is too long".into() });
        }
        let (account, cipher) = self.account(account)?;
        let place = Place { account_id: account.id, mailbox_id: 0, uid: 0 };
        self.emit(batch, place, Record::AccessRecorded { event }, &cipher);
        Ok(Outcome::Done)
    }
}
