//! Where backups go: a directory (the default) or an S3-compatible bucket, both behind
//! `object_store`, so every command has one code path.
//!
//! `TARGET` is a directory path, or `s3://bucket/prefix`. For S3 the endpoint, region and
//! whether plain HTTP is allowed come from [`S3Options`] (command-line flags) or the usual
//! `AWS_*` variables; credentials only from the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`), never from the command line, where `ps` would show them.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use crate::error::BackupError;

/// A target as the operator names it (recorded in the data directory, credentials excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSpec {
    pub location: String,
    #[serde(default)]
    pub s3: S3Options,
}

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Options {
    /// e.g. `http://127.0.0.1:8333` for a store that is not AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Allow `http://` endpoints (loopback test servers).
    pub allow_http: bool,
    /// Credentials given by the program (tests); otherwise `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`. Never recorded, never printed.
    #[serde(skip)]
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("credentials", &self.credentials.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// An opened target.
pub struct Target {
    pub(crate) spec: TargetSpec,
    pub(crate) store: Arc<dyn ObjectStore>,
    prefix: Option<ObjectPath>,
    /// For a directory target: its path, so segments can be read in place.
    pub(crate) local_root: Option<PathBuf>,
}

impl fmt::Debug for Target {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Target").field("location", &self.spec.location).finish_non_exhaustive()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.spec.location)
    }
}

impl TargetSpec {
    pub fn new(location: impl Into<String>, s3: S3Options) -> Self {
        Self { location: location.into(), s3 }
    }

    /// Opens the target; `create` makes a missing directory (a backup run), otherwise a
    /// missing directory is an error (verify and restore read an existing backup).
    pub fn open(&self, create: bool) -> Result<Target, BackupError> {
        let invalid = |reason: String| BackupError::InvalidTarget { target: self.location.clone(), reason };
        if let Some(rest) = self.location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket name after s3://".into()));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(endpoint) = &self.s3.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            if let Some(region) = &self.s3.region {
                builder = builder.with_region(region.clone());
            }
            if self.s3.allow_http {
                builder = builder.with_allow_http(true);
            }
            match &self.s3.credentials {
                Some((key_id, secret)) => {
                    builder = builder.with_access_key_id(key_id.clone()).with_secret_access_key(secret.clone());
                }
                // Without credentials object_store would ask the cloud metadata service: never
                // let a backup talk to an address nobody configured.
                None if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() => {
                    return Err(invalid("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into()));
                }
                None => {}
            }
            let store = builder.build().map_err(|error| invalid(error.to_string()))?;
            let prefix = prefix.trim_matches('/');
            let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
            return Ok(Target { spec: self.clone(), store: Arc::new(store), prefix, local_root: None });
        }
        if self.location.contains("://") {
            return Err(invalid("only directories and s3:// targets are supported".into()));
        }
        let root = PathBuf::from(&self.location);
        if create {
            std::fs::create_dir_all(&root).map_err(BackupError::io(format!("creating {}", root.display())))?;
        }
        let root = root.canonicalize().map_err(BackupError::io(format!("opening {}", self.location)))?;
        // fsync on every write: a manifest must never name a file a crash could lose.
        let store =
            LocalFileSystem::new_with_prefix(&root).map_err(|error| invalid(error.to_string()))?.with_fsync(true);
        Ok(Target { spec: self.clone(), store: Arc::new(store), prefix: None, local_root: Some(root) })
    }
}

impl Target {
    /// The object at `relative` (a `/`-separated path inside the target).
    pub(crate) fn path(&self, relative: &str) -> ObjectPath {
        match &self.prefix {
            None => ObjectPath::from(relative),
            Some(prefix) => ObjectPath::from(format!("{prefix}/{relative}")),
        }
    }

    /// `relative` of an object path listed under this target.
    pub(crate) fn relative<'a>(&self, path: &'a ObjectPath) -> &'a str {
        let full = path.as_ref();
        match &self.prefix {
            None => full,
            Some(prefix) => full.strip_prefix(prefix.as_ref()).map_or(full, |rest| rest.trim_start_matches('/')),
        }
    }

    pub(crate) fn error(&self) -> impl Fn(object_store::Error) -> BackupError + '_ {
        |source| BackupError::Target { target: self.spec.location.clone(), source }
    }

    pub fn spec(&self) -> &TargetSpec {
        &self.spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_split_into_bucket_and_prefix() {
        let spec = TargetSpec::new(
            "s3://bucket/some/prefix/",
            S3Options {
                endpoint: Some("http://127.0.0.1:1".into()),
                region: Some("us-east-1".into()),
                allow_http: true,
                credentials: Some(("key".into(), "secret".into())),
            },
        );
        let target = spec.open(false).unwrap();
        assert_eq!(target.path("manifests/a.json").as_ref(), "some/prefix/manifests/a.json");
        assert_eq!(target.relative(&target.path("segments/x")), "segments/x");
        assert!(TargetSpec::new("s3://", S3Options::default()).open(false).is_err());
        assert!(TargetSpec::new("ftp://host/x", S3Options::default()).open(false).is_err());
    }
}
