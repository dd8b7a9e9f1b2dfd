//! Key custody for mailvault: everything that touches the HSM lives here.
//!
//! - [`Hsm`] / [`HsmSession`]: a token found by label, and one logged-in session per thread.
//! - KEKs (`mailvault-kek-vN`) wrap per-account [`Dek`]s into [`WrappedDek`]s; rotation adds a
//!   version, destruction crypto-shreds.
//! - [`SealedCredential`]: external credentials sealed with AES-GCM inside the HSM.
//! - [`ManifestSignature`]: HMAC-SHA256 over backup manifests.
//! - [`password`]: argon2id for users' own passwords, optionally peppered by the HSM.
//! - [`bootstrap`] and [`testing`]: creating `SoftHSM2` configs and tokens.
#![forbid(unsafe_code)]

mod backup_key;
pub mod bootstrap;
mod config;
mod credential;
mod dek;
mod error;
mod kek;
mod manifest;
pub mod password;
mod pkcs11;
mod session;
pub mod testing;
mod token_access;
mod token_dir_lock;

pub use backup_key::backup_key_label;
pub use config::{DEFAULT_MODULE_PATH, DEFAULT_TOKEN_LABEL, HsmConfig, Pin, TOKEN_LABEL_BYTES_MAX, read_pin_file};
pub use credential::{
    CREDENTIAL_NAME_BYTES_MAX, CREDENTIAL_SECRET_BYTES_MAX, NONCE_BYTES, SealedCredential, TAG_BYTES,
};
pub use dek::{DEK_BYTES, Dek, WRAPPED_BLOB_BYTES_MAX, WrappedDek};
pub use error::HsmError;
pub use kek::kek_label;
pub use manifest::{MANIFEST_SIGNATURE_BYTES, ManifestSignature};
pub use session::{Hsm, HsmSession, KeyStatus};
