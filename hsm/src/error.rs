//! The one error type of this crate, and the mapping from raw PKCS#11 return values to it.
//!
//! Messages name paths, labels and versions, never PINs, key bytes or plaintext: errors end up
//! in logs, and logs are not a place for secrets.

use std::path::PathBuf;

use cryptoki::error::{Error as CryptokiError, RvError};

/// Everything that can go wrong between mailvault and its HSM.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("PKCS#11 module not found at {path}")]
    ModuleNotFound { path: PathBuf },
    #[error("PKCS#11 module {path} could not be loaded or initialized: {reason}")]
    ModuleLoad { path: PathBuf, reason: String },
    #[error("no token labelled {label:?} in any slot (check SOFTHSM2_CONF and MAILVAULT_HSM_TOKEN)")]
    TokenNotFound { label: String },
    #[error("more than one token labelled {label:?}; refusing to guess")]
    DuplicateToken { label: String },
    #[error("no free slot left to initialize a new token in")]
    NoFreeSlot,
    #[error("the HSM rejected the PIN")]
    WrongPin,
    #[error("the HSM PIN is locked after too many wrong attempts")]
    PinLocked,
    #[error("no HSM PIN given: set MAILVAULT_HSM_PIN or MAILVAULT_HSM_PIN_FILE")]
    PinMissing,
    #[error("key {label} is not on the token (never created, or destroyed)")]
    KeyMissing { label: String },
    #[error("more than one object labelled {label} on the token; refusing to guess")]
    DuplicateKey { label: String },
    #[error("KEK version {version} is the current one: rotate before destroying it")]
    KekInUse { version: u32 },
    #[error("ciphertext failed authentication (tampered, moved to another place, or another key)")]
    Tampered,
    #[error("manifest signature does not match")]
    SignatureMismatch,
    #[error("malformed {what}")]
    Malformed { what: &'static str },
    #[error("invalid HSM configuration: {what}")]
    Config { what: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("password hashing failed: {reason}")]
    Password { reason: String },
    #[error("PKCS#11 {operation} failed: {source}")]
    Pkcs11 {
        operation: &'static str,
        #[source]
        source: CryptokiError,
    },
}

impl HsmError {
    /// Wraps a cryptoki error with the name of the mailvault operation that hit it.
    pub(crate) fn pkcs11(operation: &'static str) -> impl FnOnce(CryptokiError) -> HsmError {
        move |source| HsmError::Pkcs11 { operation, source }
    }

    /// Wraps an IO error with a description of what was being done (a path, never contents).
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HsmError {
        let what = what.into();
        move |source| HsmError::Io { what, source }
    }
}

/// The PKCS#11 return value inside a cryptoki error, if it is one.
pub(crate) fn return_value(error: &CryptokiError) -> Option<RvError> {
    match error {
        CryptokiError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// Maps a failed authenticated decryption or unwrap. `SoftHSM2` reports a bad GCM tag as
/// `CKR_GENERAL_ERROR` (measured) and a bad AES-KWP integrity check as `CKR_WRAPPED_KEY_INVALID` or
/// `CKR_GENERAL_ERROR`; all of these mean the bytes are not what the key sealed.
pub(crate) fn authentication_failure(operation: &'static str) -> impl FnOnce(CryptokiError) -> HsmError {
    move |source| match return_value(&source) {
        Some(
            RvError::GeneralError
            | RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange
            | RvError::WrappedKeyInvalid
            | RvError::WrappedKeyLenRange,
        ) => HsmError::Tampered,
        _ => HsmError::Pkcs11 { operation, source },
    }
}
