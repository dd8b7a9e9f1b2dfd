//! The backup key: a KEK of its own (`mailvault-backup-kek-v<N>`) under which a backup's key
//! table holds every account's DEK, so that erasure can reach backups. Rotating it, rewriting
//! every target's key table under the new version without the purged accounts, and destroying
//! the old version leaves no usable copy of a purged account's DEK in any backup
//! (crypto-shredding).
//!
//! Re-wrapping between the live KEK and the backup key happens inside the HSM: the DEK is
//! unwrapped into a session object and wrapped again, never read out. Only verification of a
//! backup reads DEKs out (to decrypt its records), as the engine does for the live store.
//!
//! A backup-wrapped DEK has the same wire form as a live one (`WrappedDek`); its
//! `kek_version` names a backup key version instead of a KEK version.

use cryptoki::mechanism::Mechanism;

use crate::dek::{Dek, TransientKey, WrappedDek, transient_dek_template};
use crate::error::{HsmError, authentication_failure};
use crate::kek::kek_label;
use crate::session::HsmSession;

const BACKUP_KEY_LABEL_PREFIX: &str = "mailvault-backup-kek-v";

pub fn backup_key_label(version: u32) -> String {
    format!("{BACKUP_KEY_LABEL_PREFIX}{version}")
}

fn parse_backup_key_label(label: &str) -> Option<u32> {
    let digits = label.strip_prefix(BACKUP_KEY_LABEL_PREFIX)?;
    if digits.starts_with('0') || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl HsmSession {
    /// Backup key versions on the token, ascending.
    pub fn backup_key_versions(&self) -> Result<Vec<u32>, HsmError> {
        let _reading = crate::token_access::reading();
        let mut versions: Vec<u32> =
            self.secret_key_labels()?.iter().filter_map(|label| parse_backup_key_label(label)).collect();
        versions.sort_unstable();
        Ok(versions)
    }

    /// The current (highest) backup key version, creating version 1 on first use.
    pub fn ensure_backup_key(&self) -> Result<u32, HsmError> {
        let _guard = crate::kek::key_admin_lock()?;
        if let Some(current) = self.backup_key_versions()?.last() {
            return Ok(*current);
        }
        self.create_wrapping_key(backup_key_label(1), "C_GenerateKey (backup key)")?;
        Ok(1)
    }

    /// Adds the next backup key version and returns it. Versions only grow: the next is one
    /// past the highest present (older ones are destroyed only after a newer one exists).
    pub fn rotate_backup_key(&self) -> Result<u32, HsmError> {
        let _guard = crate::kek::key_admin_lock()?;
        let highest = self.backup_key_versions()?.last().copied().unwrap_or(0);
        let next = highest.checked_add(1).ok_or(HsmError::Malformed { what: "backup key version (exhausted)" })?;
        self.create_wrapping_key(backup_key_label(next), "C_GenerateKey (backup key)")?;
        Ok(next)
    }

    /// Destroys a backup key version that is no longer the current one: every key table
    /// wrapped under it becomes unreadable for good.
    pub fn destroy_backup_key(&self, version: u32) -> Result<(), HsmError> {
        let _guard = crate::kek::key_admin_lock()?;
        let handle = self.require_secret_key(&backup_key_label(version))?;
        if self.backup_key_versions()?.last() == Some(&version) {
            return Err(HsmError::KekInUse { version });
        }
        self.pkcs11().destroy_object(handle).map_err(HsmError::pkcs11("C_DestroyObject (backup key)"))
    }

    /// Re-wraps a live DEK (under its KEK) under backup key `backup_version`, inside the HSM.
    pub fn wrap_dek_for_backup(&self, live: &WrappedDek, backup_version: u32) -> Result<WrappedDek, HsmError> {
        let _reading = crate::token_access::reading();
        let from = kek_label(live.kek_version());
        self.rewrap_between(&from, live.blob(), &backup_key_label(backup_version), backup_version)
    }

    /// Re-wraps a backup-wrapped DEK under the current live KEK, inside the HSM (restore).
    pub fn wrap_backup_dek_for_store(&self, backup: &WrappedDek) -> Result<WrappedDek, HsmError> {
        let _reading = crate::token_access::reading();
        let (version, _) = self.current_kek()?;
        let from = backup_key_label(backup.kek_version());
        self.rewrap_between(&from, backup.blob(), &kek_label(version), version)
    }

    /// Unwraps a backup-wrapped DEK, to read a backup's records (verification).
    pub fn unwrap_backup_dek(&self, backup: &WrappedDek) -> Result<Dek, HsmError> {
        let _reading = crate::token_access::reading();
        let kek = self.require_secret_key(&backup_key_label(backup.kek_version()))?;
        self.unwrap_dek_with(kek, backup)
    }

    fn rewrap_between(&self, from: &str, blob: &[u8], to: &str, to_version: u32) -> Result<WrappedDek, HsmError> {
        let from_key = self.require_secret_key(from)?;
        let to_key = self.require_secret_key(to)?;
        let handle = self
            .pkcs11()
            .unwrap_key(&Mechanism::AesKeyWrapPad, from_key, blob, &transient_dek_template())
            .map_err(authentication_failure("C_UnwrapKey (DEK)"))?;
        let key = TransientKey { session: self, handle };
        let blob = self
            .pkcs11()
            .wrap_key(&Mechanism::AesKeyWrapPad, to_key, key.handle)
            .map_err(HsmError::pkcs11("C_WrapKey (DEK)"))?;
        WrappedDek::new(to_version, blob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_key_labels_round_trip_and_are_no_kek_labels() {
        assert_eq!(parse_backup_key_label(&backup_key_label(7)), Some(7));
        for label in ["mailvault-backup-kek-v0", "mailvault-backup-kek-v01", "mailvault-kek-v1"] {
            assert_eq!(parse_backup_key_label(label), None, "{label}");
        }
        assert!(!backup_key_label(1).starts_with("mailvault-kek-v"), "a backup key must never count as a KEK");
    }
}
