//! The manifest: what one backup holds, signed by the HSM's HMAC key (docs/backups.md).
//!
//! Stored as `manifests/<created_unix_ms, 20 digits>.manifest`, two lines:
//! ```text
//! {"format":"mailvault-backup 1", …}     the manifest, JSON, one line
//! signature <64 hex digits>               HMAC-SHA256 (HSM) of the first line's bytes
//! ```
//! The newest name is the current backup. The signature covers the exact bytes, so a manifest
//! altered in any byte fails verification whether or not it still parses.

use mailvault_hsm::{HsmSession, ManifestSignature};
use serde::{Deserialize, Serialize};

use crate::error::BackupError;

pub const MANIFEST_FORMAT: &str = "mailvault-backup 1";
pub(crate) const MANIFEST_DIRECTORY: &str = "manifests";
const MANIFEST_SUFFIX: &str = ".manifest";
const SIGNATURE_PREFIX: &str = "signature ";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub created_unix_ms: i64,
    pub store: StoreIdentity,
    pub key_table: ManifestFile,
    pub segments: Vec<ManifestSegment>,
}

/// Which store the backup is of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIdentity {
    pub shards: usize,
    pub data_dir: String,
    pub hsm_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Path inside the target.
    pub name: String,
    pub size: u64,
    /// BLAKE3, hex.
    pub blake3: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSegment {
    pub shard: u32,
    pub segment_id: u64,
    #[serde(flatten)]
    pub file: ManifestFile,
}

pub(crate) fn manifest_name(created_unix_ms: i64) -> String {
    format!("{MANIFEST_DIRECTORY}/{created_unix_ms:020}{MANIFEST_SUFFIX}")
}

pub(crate) fn is_manifest_name(relative: &str) -> bool {
    relative.strip_prefix(MANIFEST_DIRECTORY).is_some_and(|rest| rest.starts_with('/'))
        && relative.ends_with(MANIFEST_SUFFIX)
}

impl Manifest {
    /// The signed form.
    pub(crate) fn sign(&self, hsm: &HsmSession) -> Result<Vec<u8>, BackupError> {
        let body = serde_json::to_string(self).map_err(|error| BackupError::Invalid(error.to_string()))?;
        let signature = hsm.sign_manifest(body.as_bytes())?;
        Ok(format!("{body}\n{SIGNATURE_PREFIX}{}\n", hex::encode(signature.as_bytes())).into_bytes())
    }

    /// Checks the signature, then parses. Any failure is `Damaged`, saying what.
    pub(crate) fn open_signed(bytes: &[u8], hsm: &HsmSession) -> Result<Self, BackupError> {
        let damaged = |what: &str| BackupError::Damaged(format!("manifest {what}"));
        let text = std::str::from_utf8(bytes).map_err(|_| damaged("is not UTF-8"))?;
        let (body, rest) = text.split_once('\n').ok_or_else(|| damaged("has no signature line"))?;
        let signature_hex = rest
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|line| line.strip_suffix('\n'))
            .ok_or_else(|| damaged("signature line is malformed"))?;
        let signature = hex::decode(signature_hex).map_err(|_| damaged("signature is not hex"))?;
        let signature = ManifestSignature::from_slice(&signature).map_err(|_| damaged("signature has a bad length"))?;
        match hsm.verify_manifest(body.as_bytes(), &signature) {
            Ok(()) => {}
            Err(mailvault_hsm::HsmError::SignatureMismatch) => return Err(damaged("signature does not match")),
            Err(error) => return Err(error.into()),
        }
        let manifest: Manifest =
            serde_json::from_str(body).map_err(|error| damaged(&format!("is signed but malformed: {error}")))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(damaged(&format!("has unknown format {:?}", manifest.format)));
        }
        Ok(manifest)
    }
}
