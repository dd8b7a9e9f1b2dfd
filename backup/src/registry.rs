//! The targets a store has been backed up to, recorded in its data directory
//! (`backup-targets.json`, no credentials) so that erasure can reach every one of them.

use std::path::Path;

use crate::error::BackupError;
use crate::target::TargetSpec;

const REGISTRY_FILE: &str = "backup-targets.json";

/// Every target recorded for the store in `data_dir`.
pub fn registered_targets(data_dir: &Path) -> Result<Vec<TargetSpec>, BackupError> {
    let path = data_dir.join(REGISTRY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|error| BackupError::Invalid(format!("{} is malformed: {error}", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(BackupError::io(format!("reading {}", path.display()))(error)),
    }
}

/// Records `spec` (once), atomically: written beside, fsynced, renamed, directory fsynced.
pub fn register_target(data_dir: &Path, spec: &TargetSpec) -> Result<(), BackupError> {
    let mut targets = registered_targets(data_dir)?;
    if targets.contains(spec) {
        return Ok(());
    }
    targets.push(spec.clone());
    let bytes = serde_json::to_vec_pretty(&targets).map_err(|error| BackupError::Invalid(error.to_string()))?;
    let path = data_dir.join(REGISTRY_FILE);
    let temporary = data_dir.join(format!("{REGISTRY_FILE}.tmp"));
    let what = format!("writing {}", path.display());
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        std::fs::File::open(data_dir)?.sync_all()
    };
    write().map_err(BackupError::io(what))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::target::S3Options;

    fn spec(location: String, endpoint: Option<String>, allow_http: bool) -> TargetSpec {
        TargetSpec::new(location, S3Options { endpoint, region: None, allow_http, credentials: None })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever is in the file, reading it is a list or a clear error, never a panic.
        #[test]
        fn any_registry_file_reads_or_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let directory = tempfile::tempdir().unwrap();
            std::fs::write(directory.path().join(REGISTRY_FILE), &bytes).unwrap();
            match registered_targets(directory.path()) {
                Ok(_) | Err(BackupError::Invalid(_)) => {}
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }

        /// Registered targets read back in order, each once, whatever their names.
        #[test]
        fn registered_targets_round_trip(
            targets in proptest::collection::vec((".{0,20}", proptest::option::of(".{0,20}"), any::<bool>()), 0..5),
        ) {
            let directory = tempfile::tempdir().unwrap();
            let mut expected: Vec<TargetSpec> = Vec::new();
            for (location, endpoint, allow_http) in targets {
                let spec = spec(location, endpoint, allow_http);
                register_target(directory.path(), &spec).unwrap();
                if !expected.contains(&spec) {
                    expected.push(spec);
                }
            }
            prop_assert_eq!(registered_targets(directory.path()).unwrap(), expected);
        }
    }
}
