//! The manifest: what one backup holds, signed by the HSM's HMAC key (docs/backups.md).
//!
//! Stored as `manifests/<created_unix_ms, 20 digits>.manifest`, two lines:
//! ```text
//! {"format":"mailvault-backup 1", …}     the manifest, JSON, one line
//! signature <64 hex digits>               HMAC-SHA256 (HSM) of the first line's bytes
//! ```
//! The newest name is the current backup. The signature covers the exact bytes, so a manifest
//! altered in any byte fails verification whether or not it still parses.
//!
//! Decoding is two pure steps around the HSM: [`split_signed`] (the envelope), the HSM's
//! check of the signature, then [`Manifest::parse_body`] (the JSON), so the JSON parser only
//! sees signed bytes. Both pure steps are proptested (`tests/manifest_codec.rs`) and fuzzed
//! (`fuzz/fuzz_targets/backup_manifest.rs`) without an HSM.

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

/// A signed manifest split into its two lines, without the HSM: `body` is what the signature
/// covers, byte for byte. [`split_signed`] and [`join_signed`] are inverses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest<'a> {
    pub body: &'a str,
    pub signature: ManifestSignature,
}

/// Why manifest bytes do not decode. The text completes "manifest …" in a `Damaged` error.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("is not UTF-8")]
    NotUtf8,
    #[error("has no signature line")]
    NoSignatureLine,
    #[error("signature line is malformed")]
    MalformedSignatureLine,
    #[error("signature is not lowercase hex")]
    SignatureNotHex,
    #[error("signature has a bad length")]
    SignatureLength,
    #[error("is signed but malformed: {0}")]
    MalformedBody(String),
    #[error("has unknown format {0:?}")]
    UnknownFormat(String),
}

/// The signed form's bytes: `body`, a newline, `signature <lowercase hex>`, a newline.
pub fn join_signed(body: &str, signature: &ManifestSignature) -> Vec<u8> {
    format!("{body}\n{SIGNATURE_PREFIX}{}\n", hex::encode(signature.as_bytes())).into_bytes()
}

/// Splits the signed form into the body and the signature, checking the envelope only (the
/// signature itself is checked by the HSM). Exactly one spelling is accepted, the one
/// [`join_signed`] writes: a body without a newline, lowercase hex, one closing newline.
pub fn split_signed(bytes: &[u8]) -> Result<SignedManifest<'_>, ManifestError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8)?;
    let (body, rest) = text.split_once('\n').ok_or(ManifestError::NoSignatureLine)?;
    let signature_hex = rest
        .strip_prefix(SIGNATURE_PREFIX)
        .and_then(|line| line.strip_suffix('\n'))
        .ok_or(ManifestError::MalformedSignatureLine)?;
    // `hex::decode` also takes uppercase; one spelling per signature keeps the form canonical.
    if !signature_hex.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ManifestError::SignatureNotHex);
    }
    let signature = hex::decode(signature_hex).map_err(|_| ManifestError::SignatureNotHex)?;
    let signature = ManifestSignature::from_slice(&signature).map_err(|_| ManifestError::SignatureLength)?;
    Ok(SignedManifest { body, signature })
}

impl Manifest {
    /// The first line of the signed form: this manifest as one line of JSON.
    pub fn to_body(&self) -> Result<String, BackupError> {
        serde_json::to_string(self).map_err(|error| BackupError::Invalid(error.to_string()))
    }

    /// Parses a manifest's first line (after its signature was checked, in `open_signed`).
    pub fn parse_body(body: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest =
            serde_json::from_str(body).map_err(|error| ManifestError::MalformedBody(error.to_string()))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(ManifestError::UnknownFormat(manifest.format));
        }
        Ok(manifest)
    }

    /// The signed form.
    pub(crate) fn sign(&self, hsm: &HsmSession) -> Result<Vec<u8>, BackupError> {
        let body = self.to_body()?;
        let signature = hsm.sign_manifest(body.as_bytes())?;
        Ok(join_signed(&body, &signature))
    }

    /// Splits, checks the signature, then parses. Any failure is `Damaged`, saying what. The
    /// JSON parser only ever sees bytes the HSM's key signed.
    pub(crate) fn open_signed(bytes: &[u8], hsm: &HsmSession) -> Result<Self, BackupError> {
        let damaged = |error: ManifestError| BackupError::Damaged(format!("manifest {error}"));
        let SignedManifest { body, signature } = split_signed(bytes).map_err(damaged)?;
        match hsm.verify_manifest(body.as_bytes(), &signature) {
            Ok(()) => {}
            Err(mailvault_hsm::HsmError::SignatureMismatch) => {
                return Err(BackupError::Damaged("manifest signature does not match".into()));
            }
            Err(error) => return Err(error.into()),
        }
        Self::parse_body(body).map_err(damaged)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn only_manifest_files_under_the_manifest_directory_are_manifests() {
        assert!(is_manifest_name("manifests/00000001700000000000.manifest"));
        for name in ["manifests.manifest", "manifests", "keytables/a.manifest", "manifests/a.manifest.tmp", ""] {
            assert!(!is_manifest_name(name), "{name:?}");
        }
    }

    proptest! {
        /// The newest manifest is found by the greatest name, so names must sort by time.
        #[test]
        fn manifest_names_sort_by_time(earlier in 0..=i64::MAX, later in 0..=i64::MAX) {
            let (earlier, later) = (earlier.min(later), earlier.max(later));
            prop_assert!(is_manifest_name(&manifest_name(earlier)));
            prop_assert_eq!(manifest_name(earlier).cmp(&manifest_name(later)), earlier.cmp(&later));
        }

        #[test]
        fn any_listed_name_is_judged_without_panicking(name in ".{0,40}") {
            let _ = is_manifest_name(&name);
        }
    }
}
