//! Data keys: a `Dek` is one account's AES-256 key in memory (zeroized on drop); a
//! `WrappedDek` is that key wrapped by a KEK (`CKM_AES_KEY_WRAP_PAD`), the only form stored.
//!
//! Wire form of a `WrappedDek` (little-endian): `kek_version: u32 | blob_len: u16 | blob`.

use std::fmt;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{HsmError, authentication_failure};
use crate::kek::kek_label;
use crate::session::HsmSession;

pub const DEK_BYTES: usize = 32;
/// AES key wrap output is a multiple of 8 bytes and at least 16 (RFC 5649).
const WRAPPED_BLOB_BYTES_MIN: usize = 16;
/// 40 bytes for a 32-byte DEK; the cap leaves room for other HSMs' framing, no more.
pub const WRAPPED_BLOB_BYTES_MAX: usize = 512;
const WRAPPED_HEADER_BYTES: usize = 4 + 2;

/// An account's data key. Never printed; zeroized when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Dek([u8; DEK_BYTES]);

impl Dek {
    pub fn from_bytes(bytes: [u8; DEK_BYTES]) -> Dek {
        Dek(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; DEK_BYTES] {
        &self.0
    }
}

impl fmt::Debug for Dek {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Dek(<redacted>)")
    }
}

/// A DEK wrapped under KEK `kek_version`. Safe to store and log (it is ciphertext).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedDek {
    kek_version: u32,
    blob: Vec<u8>,
}

impl WrappedDek {
    pub fn kek_version(&self) -> u32 {
        self.kek_version
    }

    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// Pairs a blob with its KEK version, checking the same bounds the decoder checks.
    pub fn new(kek_version: u32, blob: Vec<u8>) -> Result<WrappedDek, HsmError> {
        check_wrapped(kek_version, blob.len())?;
        Ok(WrappedDek { kek_version, blob })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // `new` and `from_bytes` bound the blob by WRAPPED_BLOB_BYTES_MAX, so it fits a u16.
        const _: () = assert!(WRAPPED_BLOB_BYTES_MAX <= u16::MAX as usize);
        let mut bytes = Vec::with_capacity(WRAPPED_HEADER_BYTES + self.blob.len());
        bytes.extend_from_slice(&self.kek_version.to_le_bytes());
        bytes.extend_from_slice(&(self.blob.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&self.blob);
        bytes
    }

    /// Decodes exactly one wrapped DEK; trailing bytes are an error, not ignored.
    pub fn from_bytes(bytes: &[u8]) -> Result<WrappedDek, HsmError> {
        let malformed = HsmError::Malformed { what: "wrapped DEK" };
        let (version, rest) = bytes.split_first_chunk::<4>().ok_or(malformed)?;
        let (length, blob) = rest.split_first_chunk::<2>().ok_or(HsmError::Malformed { what: "wrapped DEK" })?;
        let kek_version = u32::from_le_bytes(*version);
        if usize::from(u16::from_le_bytes(*length)) != blob.len() {
            return Err(HsmError::Malformed { what: "wrapped DEK (length)" });
        }
        WrappedDek::new(kek_version, blob.to_vec())
    }
}

fn check_wrapped(kek_version: u32, blob_len: usize) -> Result<(), HsmError> {
    if kek_version == 0 {
        return Err(HsmError::Malformed { what: "wrapped DEK (KEK version 0)" });
    }
    if !(WRAPPED_BLOB_BYTES_MIN..=WRAPPED_BLOB_BYTES_MAX).contains(&blob_len) || !blob_len.is_multiple_of(8) {
        return Err(HsmError::Malformed { what: "wrapped DEK (blob length)" });
    }
    Ok(())
}

/// A DEK as a session object, destroyed when this guard drops, whatever happened meanwhile.
pub(crate) struct TransientKey<'session> {
    pub(crate) session: &'session HsmSession,
    pub(crate) handle: ObjectHandle,
}

impl Drop for TransientKey<'_> {
    fn drop(&mut self) {
        // Best effort: a session object dies with its session anyway.
        let _ = self.session.pkcs11().destroy_object(self.handle);
    }
}

/// Template of a DEK while it exists inside the HSM: a session object (never on the token),
/// extractable and not sensitive, because the whole point is to read it out into `Dek`.
pub(crate) fn transient_dek_template() -> Vec<Attribute> {
    vec![
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
    ]
}

impl HsmSession {
    /// 256 random bits from the HSM's generator.
    pub fn generate_dek(&self) -> Result<Dek, HsmError> {
        let mut dek = Dek([0; DEK_BYTES]);
        self.pkcs11().generate_random_slice(&mut dek.0).map_err(HsmError::pkcs11("C_GenerateRandom"))?;
        Ok(dek)
    }

    /// Wraps `dek` under the current (highest) KEK with `CKM_AES_KEY_WRAP_PAD`.
    pub fn wrap_dek(&self, dek: &Dek) -> Result<WrappedDek, HsmError> {
        let _reading = crate::token_access::reading();
        let (version, kek) = self.current_kek()?;
        self.wrap_under(dek, version, kek)
    }

    pub(crate) fn wrap_under(&self, dek: &Dek, version: u32, kek: ObjectHandle) -> Result<WrappedDek, HsmError> {
        let mut template = transient_dek_template();
        template.push(Attribute::Value(dek.0.to_vec()));
        let created = self.pkcs11().create_object(&template);
        // The template's copy of the key is ours to wipe.
        for attribute in &mut template {
            if let Attribute::Value(bytes) = attribute {
                bytes.zeroize();
            }
        }
        let key = TransientKey { session: self, handle: created.map_err(HsmError::pkcs11("C_CreateObject (DEK)"))? };
        let blob = self
            .pkcs11()
            .wrap_key(&Mechanism::AesKeyWrapPad, kek, key.handle)
            .map_err(HsmError::pkcs11("C_WrapKey (DEK)"))?;
        WrappedDek::new(version, blob)
    }

    /// Unwraps under the KEK version the blob names. A destroyed version gives `KeyMissing`;
    /// a blob altered in any byte gives `Tampered`.
    pub fn unwrap_dek(&self, wrapped: &WrappedDek) -> Result<Dek, HsmError> {
        let _reading = crate::token_access::reading();
        let kek = self.require_secret_key(&kek_label(wrapped.kek_version))?;
        self.unwrap_dek_with(kek, wrapped)
    }

    /// Unwraps under the given wrapping key (a KEK, or a backup key).
    pub(crate) fn unwrap_dek_with(&self, kek: ObjectHandle, wrapped: &WrappedDek) -> Result<Dek, HsmError> {
        // No CKA_VALUE_LEN: the length comes from the blob (SoftHSM2 refuses it as read-only),
        // and is checked below.
        let template = transient_dek_template();
        let handle = self
            .pkcs11()
            .unwrap_key(&Mechanism::AesKeyWrapPad, kek, &wrapped.blob, &template)
            .map_err(authentication_failure("C_UnwrapKey (DEK)"))?;
        let key = TransientKey { session: self, handle };
        let mut attributes = self
            .pkcs11()
            .get_attributes(key.handle, &[AttributeType::Value])
            .map_err(HsmError::pkcs11("C_GetAttributeValue (DEK)"))?;
        let mut dek = Dek([0; DEK_BYTES]);
        let mut found = false;
        for attribute in &mut attributes {
            if let Attribute::Value(bytes) = attribute {
                if bytes.len() == DEK_BYTES {
                    dek.0.copy_from_slice(bytes);
                    found = true;
                }
                bytes.zeroize();
            }
        }
        if found { Ok(dek) } else { Err(HsmError::Malformed { what: "unwrapped DEK (length)" }) }
    }

    /// Re-wraps a DEK under the current KEK (after a rotation). Already-current blobs are
    /// returned unchanged.
    pub fn rewrap_dek(&self, wrapped: &WrappedDek) -> Result<WrappedDek, HsmError> {
        let _reading = crate::token_access::reading();
        let (version, kek) = self.current_kek()?;
        if wrapped.kek_version == version {
            return Ok(wrapped.clone());
        }
        let dek = self.unwrap_dek(wrapped)?;
        self.wrap_under(&dek, version, kek)
    }
}
