//! The key-encryption keys: `mailvault-kek-v1`, `-v2`, …, AES-256, non-extractable, used only
//! to wrap and unwrap DEKs. Rotation adds a version; destroying a version crypto-shreds every
//! DEK wrapped only under it.
//!
//! Versions are never reused: a token data object records the highest version ever issued, so
//! destroying the newest KEK and rotating again cannot give an old blob's version a new key.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};

use crate::error::HsmError;
use crate::session::HsmSession;
use crate::token_access::{Administering, administer};
use crate::token_dir_lock::{TokenDirLock, lock_token_dir};

const KEK_LABEL_PREFIX: &str = "mailvault-kek-v";
/// Data object holding the highest KEK version ever issued (u32 little-endian).
const KEK_HIGH_WATER_LABEL: &str = "mailvault-kek-version-high-water";
const KEK_BYTES: u64 = 32;

/// Held while keys are created or destroyed: the process-wide mutex, and (for `SoftHSM2`) the
/// cross-process token-directory lock, because `SoftHSM2` writes a token object's files while
/// another process loading the token directory may read them (CI saw `C_GenerateKey` fail with
/// `CKR_GENERAL_ERROR` under that race); it also keeps two processes from creating one label.
///
/// Within the process, the guard is exclusive use of the token's objects
/// ([`crate::token_access`]): it serializes "find, then create if missing" (not atomic in
/// PKCS#11), and keeps other threads' calls from reading an object being written.
#[derive(Debug)]
pub(crate) struct KeyAdminGuard {
    _token_dir: Option<TokenDirLock>,
    _process: Administering,
}

pub(crate) fn key_admin_lock() -> Result<KeyAdminGuard, HsmError> {
    let process = administer();
    Ok(KeyAdminGuard { _token_dir: lock_token_dir()?, _process: process })
}

/// The label of KEK `version`.
pub fn kek_label(version: u32) -> String {
    format!("{KEK_LABEL_PREFIX}{version}")
}

/// The version in a KEK label; `None` for any other label (including `-v0` and `-v01`, which
/// mailvault never writes).
fn parse_kek_label(label: &str) -> Option<u32> {
    let digits = label.strip_prefix(KEK_LABEL_PREFIX)?;
    if digits.starts_with('0') || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl HsmSession {
    /// KEK versions on the token, ascending.
    pub(crate) fn kek_versions(&self) -> Result<Vec<u32>, HsmError> {
        let mut versions: Vec<u32> =
            self.secret_key_labels()?.iter().filter_map(|label| parse_kek_label(label)).collect();
        versions.sort_unstable();
        Ok(versions)
    }

    /// The highest KEK version present: the one new DEKs are wrapped under.
    pub(crate) fn current_kek(&self) -> Result<(u32, ObjectHandle), HsmError> {
        let version = *self.kek_versions()?.last().ok_or_else(|| HsmError::KeyMissing { label: kek_label(1) })?;
        Ok((version, self.require_secret_key(&kek_label(version))?))
    }

    /// Generates KEK `version` inside the token. Callers hold [`key_admin_lock`].
    pub(crate) fn create_kek(&self, version: u32) -> Result<ObjectHandle, HsmError> {
        let handle = self.create_wrapping_key(kek_label(version), "C_GenerateKey (KEK)")?;
        self.raise_kek_high_water(version)?;
        Ok(handle)
    }

    /// A non-extractable AES-256 token key that only wraps and unwraps (KEKs, backup keys).
    pub(crate) fn create_wrapping_key(&self, label: String, operation: &'static str) -> Result<ObjectHandle, HsmError> {
        let template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(KEK_BYTES.into()),
            Attribute::Label(label.into_bytes()),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
        ];
        self.pkcs11().generate_key(&Mechanism::AesKeyGen, &template).map_err(HsmError::pkcs11(operation))
    }

    /// Creates the next KEK version and returns it. DEKs wrapped before stay readable under
    /// their own version until [`HsmSession::rewrap_dek`] moves them.
    pub fn rotate_kek(&self) -> Result<u32, HsmError> {
        let _guard = key_admin_lock()?;
        let next = self.next_kek_version()?;
        self.create_kek(next)?;
        Ok(next)
    }

    /// One above every version ever issued on this token, present or destroyed.
    pub(crate) fn next_kek_version(&self) -> Result<u32, HsmError> {
        let highest_present = self.kek_versions()?.last().copied().unwrap_or(0);
        let highest_issued = self.kek_high_water()?.unwrap_or(0).max(highest_present);
        highest_issued.checked_add(1).ok_or(HsmError::Malformed { what: "KEK version counter (exhausted)" })
    }

    /// Destroys KEK `version`: every DEK wrapped only under it becomes unrecoverable. The
    /// current version is refused, so that wrapping never silently falls back to an older KEK.
    pub fn destroy_kek(&self, version: u32) -> Result<(), HsmError> {
        let _guard = key_admin_lock()?;
        let label = kek_label(version);
        let handle = self.require_secret_key(&label)?;
        if self.kek_versions()?.last() == Some(&version) {
            return Err(HsmError::KekInUse { version });
        }
        self.raise_kek_high_water(version)?;
        self.pkcs11().destroy_object(handle).map_err(HsmError::pkcs11("C_DestroyObject (KEK)"))
    }

    /// The high-water objects: normally one; two after a crash between writing the new one
    /// and deleting the old (`SoftHSM2` makes a data object's value read-only, so raising the
    /// mark is "create the new, then destroy the old").
    fn kek_high_water_objects(&self) -> Result<Vec<(ObjectHandle, u32)>, HsmError> {
        let template = [
            Attribute::Token(true),
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(KEK_HIGH_WATER_LABEL.as_bytes().to_vec()),
        ];
        let handles = self.pkcs11().find_objects(&template).map_err(HsmError::pkcs11("C_FindObjects"))?;
        let mut objects = Vec::with_capacity(handles.len());
        for handle in handles {
            let attributes = self
                .pkcs11()
                .get_attributes(handle, &[AttributeType::Value])
                .map_err(HsmError::pkcs11("C_GetAttributeValue (KEK high water)"))?;
            let value = attributes.iter().find_map(|attribute| match attribute {
                Attribute::Value(bytes) => <[u8; 4]>::try_from(bytes.as_slice()).ok(),
                _ => None,
            });
            let value = value.ok_or(HsmError::Malformed { what: "KEK high-water object" })?;
            objects.push((handle, u32::from_le_bytes(value)));
        }
        Ok(objects)
    }

    fn kek_high_water(&self) -> Result<Option<u32>, HsmError> {
        Ok(self.kek_high_water_objects()?.iter().map(|(_, version)| *version).max())
    }

    /// Records that `version` has been issued, if it is above the recorded high water.
    fn raise_kek_high_water(&self, version: u32) -> Result<(), HsmError> {
        let existing = self.kek_high_water_objects()?;
        if existing.iter().any(|(_, recorded)| *recorded >= version) {
            return Ok(());
        }
        let template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(KEK_HIGH_WATER_LABEL.as_bytes().to_vec()),
            Attribute::Value(version.to_le_bytes().to_vec()),
        ];
        self.pkcs11().create_object(&template).map_err(HsmError::pkcs11("C_CreateObject (KEK high water)"))?;
        for (handle, _) in existing {
            self.pkcs11().destroy_object(handle).map_err(HsmError::pkcs11("C_DestroyObject (KEK high water)"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kek_labels_round_trip_and_reject_lookalikes() {
        assert_eq!(parse_kek_label(&kek_label(1)), Some(1));
        assert_eq!(parse_kek_label(&kek_label(4_000_000_000)), Some(4_000_000_000));
        for label in ["mailvault-kek-v", "mailvault-kek-v0", "mailvault-kek-v01", "mailvault-kek-v1x", "kek-v1"] {
            assert_eq!(parse_kek_label(label), None, "{label}");
        }
    }
}
