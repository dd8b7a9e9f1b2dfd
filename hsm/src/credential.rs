//! Sealing external credentials (a POP password, a calendar feed token) with AES-256-GCM inside
//! the HSM: the key never leaves it, and the associated data binds each sealed blob to its
//! account and credential id, so a blob copied to another account or credential fails to open.
//!
//! Wire form of a `SealedCredential` (little-endian):
//! `key_version: u32 | nonce: [u8; 12] | sealed_len: u32 | ciphertext ‖ tag (16)`.

use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use zeroize::Zeroizing;

use crate::error::{HsmError, authentication_failure};
use crate::session::HsmSession;

pub(crate) const CREDENTIAL_KEY_LABEL: &str = "mailvault-credential-v1";
const CREDENTIAL_KEY_VERSION: u32 = 1;
const CREDENTIAL_KEY_LABEL_PREFIX: &str = "mailvault-credential-v";
pub const NONCE_BYTES: usize = 12;
pub const TAG_BYTES: usize = 16;
/// Credentials are passwords and tokens; anything larger is a mistake, not a credential.
pub const CREDENTIAL_SECRET_BYTES_MAX: usize = 64 * 1024;
/// Account names and credential ids are identifiers, not documents.
pub const CREDENTIAL_NAME_BYTES_MAX: usize = 1024;
const SEALED_HEADER_BYTES: usize = 4 + NONCE_BYTES + 4;
/// Domain separation: these AAD bytes can never be mistaken for another use of GCM.
const AAD_CONTEXT: &[u8] = b"mailvault-credential-v1\0";

/// A credential sealed by the HSM. Safe to store (it is ciphertext and a nonce).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedCredential {
    key_version: u32,
    nonce: [u8; NONCE_BYTES],
    sealed: Vec<u8>,
}

impl SealedCredential {
    pub fn key_version(&self) -> u32 {
        self.key_version
    }

    pub fn nonce(&self) -> &[u8; NONCE_BYTES] {
        &self.nonce
    }

    /// Ciphertext followed by the 16-byte GCM tag.
    pub fn ciphertext(&self) -> &[u8] {
        &self.sealed
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(SEALED_HEADER_BYTES + self.sealed.len());
        bytes.extend_from_slice(&self.key_version.to_le_bytes());
        bytes.extend_from_slice(&self.nonce);
        // Bounded by CREDENTIAL_SECRET_BYTES_MAX + TAG_BYTES on every path that builds one.
        bytes.extend_from_slice(&(self.sealed.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&self.sealed);
        bytes
    }

    /// Decodes exactly one sealed credential; trailing bytes are an error, not ignored.
    pub fn from_bytes(bytes: &[u8]) -> Result<SealedCredential, HsmError> {
        const MALFORMED: HsmError = HsmError::Malformed { what: "sealed credential" };
        let (version, rest) = bytes.split_first_chunk::<4>().ok_or(MALFORMED)?;
        let (nonce, rest) = rest.split_first_chunk::<NONCE_BYTES>().ok_or(MALFORMED)?;
        let (length, sealed) = rest.split_first_chunk::<4>().ok_or(MALFORMED)?;
        let key_version = u32::from_le_bytes(*version);
        let length = u32::from_le_bytes(*length) as usize;
        if key_version == 0
            || length != sealed.len()
            || !(TAG_BYTES..=CREDENTIAL_SECRET_BYTES_MAX + TAG_BYTES).contains(&length)
        {
            return Err(MALFORMED);
        }
        Ok(SealedCredential { key_version, nonce: *nonce, sealed: sealed.to_vec() })
    }
}

/// The associated data: context, then account and credential id, each length-prefixed so that
/// ("ab", "c") and ("a", "bc") differ. Never empty (`SoftHSM2`'s GCM needs non-empty AAD).
fn associated_data(account: &str, credential_id: &str) -> Result<Vec<u8>, HsmError> {
    if account.len() > CREDENTIAL_NAME_BYTES_MAX || credential_id.len() > CREDENTIAL_NAME_BYTES_MAX {
        return Err(HsmError::Malformed { what: "credential account or id (too long)" });
    }
    let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + 8 + account.len() + credential_id.len());
    aad.extend_from_slice(AAD_CONTEXT);
    for part in [account, credential_id] {
        aad.extend_from_slice(&(part.len() as u32).to_le_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    Ok(aad)
}

const TAG_BITS: u64 = (TAG_BYTES * 8) as u64;

impl HsmSession {
    pub(crate) fn create_credential_key(&self) -> Result<ObjectHandle, HsmError> {
        let template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Label(CREDENTIAL_KEY_LABEL.as_bytes().to_vec()),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
        ];
        self.pkcs11()
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(HsmError::pkcs11("C_GenerateKey (credential key)"))
    }

    /// Seals `secret` for (`account`, `credential_id`) with AES-GCM inside the HSM, under a
    /// fresh random 96-bit nonce from the HSM's generator.
    pub fn seal_credential(
        &self,
        account: &str,
        credential_id: &str,
        secret: &[u8],
    ) -> Result<SealedCredential, HsmError> {
        let _reading = crate::token_access::reading();
        if secret.len() > CREDENTIAL_SECRET_BYTES_MAX {
            return Err(HsmError::Malformed { what: "credential secret (too long)" });
        }
        let aad = associated_data(account, credential_id)?;
        let key = self.require_secret_key(CREDENTIAL_KEY_LABEL)?;
        let mut nonce = [0_u8; NONCE_BYTES];
        self.pkcs11().generate_random_slice(&mut nonce).map_err(HsmError::pkcs11("C_GenerateRandom"))?;
        let mut iv = nonce;
        let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into()).map_err(HsmError::pkcs11("GCM parameters"))?;
        let sealed = self
            .pkcs11()
            .encrypt(&Mechanism::AesGcm(params), key, secret)
            .map_err(HsmError::pkcs11("C_Encrypt (credential)"))?;
        if sealed.len() != secret.len() + TAG_BYTES {
            return Err(HsmError::Malformed { what: "GCM output from the HSM (length)" });
        }
        Ok(SealedCredential { key_version: CREDENTIAL_KEY_VERSION, nonce, sealed })
    }

    /// Opens a sealed credential. Any changed byte, or another account or credential id, gives
    /// `Tampered`; the plaintext is zeroized when the caller drops it.
    pub fn open_credential(
        &self,
        account: &str,
        credential_id: &str,
        sealed: &SealedCredential,
    ) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        let _reading = crate::token_access::reading();
        let aad = associated_data(account, credential_id)?;
        let label = format!("{CREDENTIAL_KEY_LABEL_PREFIX}{}", sealed.key_version);
        let key = self.require_secret_key(&label)?;
        let mut iv = sealed.nonce;
        let params = GcmParams::new(&mut iv, &aad, TAG_BITS.into()).map_err(HsmError::pkcs11("GCM parameters"))?;
        let plaintext = self
            .pkcs11()
            .decrypt(&Mechanism::AesGcm(params), key, &sealed.sealed)
            .map(Zeroizing::new)
            .map_err(authentication_failure("C_Decrypt (credential)"))?;
        Ok(plaintext)
    }
}
