//! Signing backup manifests with HMAC-SHA256 under a non-extractable HSM key, so that a backup
//! target cannot forge or alter a manifest without the HSM.

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};

use crate::error::{HsmError, return_value};
use crate::session::HsmSession;

pub(crate) const MANIFEST_KEY_LABEL: &str = "mailvault-manifest-hmac-v1";
pub const MANIFEST_SIGNATURE_BYTES: usize = 32;
const HMAC_KEY_BYTES: u64 = 32;

/// An HMAC-SHA256 tag over a manifest. Not secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestSignature([u8; MANIFEST_SIGNATURE_BYTES]);

impl ManifestSignature {
    pub fn from_bytes(bytes: [u8; MANIFEST_SIGNATURE_BYTES]) -> ManifestSignature {
        ManifestSignature(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Result<ManifestSignature, HsmError> {
        bytes.try_into().map(ManifestSignature).map_err(|_| HsmError::Malformed { what: "manifest signature (length)" })
    }

    pub fn as_bytes(&self) -> &[u8; MANIFEST_SIGNATURE_BYTES] {
        &self.0
    }
}

impl HsmSession {
    /// Generates a 32-byte generic secret usable only for HMAC sign/verify, labelled `label`.
    pub(crate) fn create_hmac_key(&self, label: &str) -> Result<ObjectHandle, HsmError> {
        let template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::ValueLen(HMAC_KEY_BYTES.into()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
        ];
        self.pkcs11()
            .generate_key(&Mechanism::GenericSecretKeyGen, &template)
            .map_err(HsmError::pkcs11("C_GenerateKey (HMAC key)"))
    }

    /// HMAC-SHA256 of `data` under the key labelled `label`.
    pub(crate) fn hmac(&self, label: &str, data: &[u8]) -> Result<[u8; 32], HsmError> {
        let _reading = crate::token_access::reading();
        let key = self.require_secret_key(label)?;
        let tag = self.pkcs11().sign(&Mechanism::Sha256Hmac, key, data).map_err(HsmError::pkcs11("C_Sign (HMAC)"))?;
        tag.as_slice().try_into().map_err(|_| HsmError::Malformed { what: "HMAC output from the HSM (length)" })
    }

    pub fn sign_manifest(&self, data: &[u8]) -> Result<ManifestSignature, HsmError> {
        self.hmac(MANIFEST_KEY_LABEL, data).map(ManifestSignature)
    }

    /// Verifies inside the HSM (constant time there); a mismatch is `SignatureMismatch`.
    pub fn verify_manifest(&self, data: &[u8], signature: &ManifestSignature) -> Result<(), HsmError> {
        let _reading = crate::token_access::reading();
        let key = self.require_secret_key(MANIFEST_KEY_LABEL)?;
        self.pkcs11().verify(&Mechanism::Sha256Hmac, key, data, &signature.0).map_err(|error| {
            match return_value(&error) {
                Some(RvError::SignatureInvalid | RvError::SignatureLenRange) => HsmError::SignatureMismatch,
                _ => HsmError::pkcs11("C_Verify (manifest)")(error),
            }
        })
    }
}
