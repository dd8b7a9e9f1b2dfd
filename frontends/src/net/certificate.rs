//! The self-signed certificate made on first run, so that a new install speaks TLS at once:
//! `cert.pem` and `key.pem` (mode 0600) in their own directory (mode 0700).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use rcgen::{CertificateParams, DnType, KeyPair};

use super::tls::TlsSetupError;

pub const CERTIFICATE_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";

/// Creates the pair in `directory` unless both files exist; returns whether it did. A generated
/// certificate names `names` plus localhost and the loopback addresses.
pub fn ensure_self_signed(directory: &Path, names: &[String]) -> Result<bool, TlsSetupError> {
    let certificate_path = directory.join(CERTIFICATE_FILE);
    let key_path = directory.join(KEY_FILE);
    if certificate_path.exists() && key_path.exists() {
        return Ok(false);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(directory)
        .map_err(|source| TlsSetupError::Io { path: directory.display().to_string(), source })?;
    let mut subject_names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for name in names {
        if !subject_names.contains(name) {
            subject_names.push(name.clone());
        }
    }
    let mut params = CertificateParams::new(subject_names)?;
    params.distinguished_name.push(DnType::CommonName, "mailvault self-signed");
    let key = KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    // The key first: a certificate without its key is useless, a key without a certificate
    // is regenerated next time.
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&certificate_path, certificate.pem().as_bytes(), 0o644)?;
    Ok(true)
}

/// Writes a file through a temporary name and a rename, created with `mode` from the start (no
/// moment where the key is readable by others).
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsSetupError> {
    let error = |source| TlsSetupError::Io { path: path.display().to_string(), source };
    let temporary = path.with_extension("pem.tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&temporary).map_err(error)?;
    file.write_all(contents).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn generates_once_with_a_private_key_file() {
        let directory = tempfile::tempdir().unwrap();
        let tls = directory.path().join("tls");
        assert!(ensure_self_signed(&tls, &["mail.example".into()]).unwrap());
        let mode = std::fs::metadata(tls.join(KEY_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = std::fs::read(tls.join(CERTIFICATE_FILE)).unwrap();
        assert!(!ensure_self_signed(&tls, &[]).unwrap());
        assert_eq!(std::fs::read(tls.join(CERTIFICATE_FILE)).unwrap(), first);
    }
}
