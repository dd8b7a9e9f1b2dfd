//! The one error type of backup commands: what went wrong, never a key or a byte of mail.

use mailvault_engine::offline::ReadError;
use mailvault_hsm::HsmError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("invalid target {target:?}: {reason}")]
    InvalidTarget { target: String, reason: String },
    #[error("target {target}: {source}")]
    Target { target: String, source: object_store::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    #[error("reading the store: {0}")]
    Read(#[from] ReadError),
    #[error("opening the store: {0}")]
    Open(#[from] mailvault_engine::OpenError),
    #[error("the target has no manifest (no backup was made to it yet)")]
    NoManifest,
    #[error("backup is damaged: {0}")]
    Damaged(String),
    /// Segments of the live store whose frames failed the check `backup run` makes as it copies
    /// (each: shard, file, where and what). The run wrote no manifest: the target keeps its
    /// previous backup.
    #[error(
        "the store is damaged, so this backup was not completed (the target keeps its previous one): {}",
        .0.join("; ")
    )]
    StoreDamaged(Vec<String>),
    #[error("{0}")]
    Invalid(String),
}

impl BackupError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
        let what = what.into();
        move |source| BackupError::Io { what, source }
    }
}
