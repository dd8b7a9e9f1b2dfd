//! The rustls client configuration (aws-lc-rs provider): trust the CA or certificate files
//! given, or, for self-signed test servers, any certificate (signatures are still checked, so
//! the handshake costs what a verified one does).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Which server certificates to accept.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Certificates chaining to one in these PEM files (a self-signed server certificate works
    /// as its own anchor).
    Files(Vec<PathBuf>),
    /// Any certificate: for test servers only.
    Insecure,
}

/// Why no TLS configuration could be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
    #[error("certificate in {path}: {source}")]
    BadCertificate { path: PathBuf, source: rustls::Error },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS settings every connection of a run shares.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub config: Arc<ClientConfig>,
    /// The name checked against the certificate and sent as SNI.
    pub server_name: ServerName<'static>,
}

impl TlsSettings {
    pub fn new(trust: &Trust, server_name: &str) -> Result<Self, TlsSetupError> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let config = match trust {
            Trust::Files(paths) => {
                let mut roots = RootCertStore::empty();
                for path in paths {
                    add_certificates(&mut roots, path)?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.signature_verification_algorithms)))
                .with_no_client_auth(),
        };
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| TlsSetupError::Config(rustls::Error::General(format!("bad server name {server_name}"))))?;
        Ok(Self { config: Arc::new(config), server_name })
    }
}

fn add_certificates(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsSetupError> {
    let read_error = |source| TlsSetupError::Read { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut found = false;
    for certificate in rustls_pemfile::certs(&mut std::io::BufReader::new(file)) {
        let certificate = certificate.map_err(read_error)?;
        roots.add(certificate).map_err(|source| TlsSetupError::BadCertificate { path: path.to_owned(), source })?;
        found = true;
    }
    if found { Ok(()) } else { Err(TlsSetupError::NoCertificate(path.to_owned())) }
}

/// Accepts any certificate but still verifies the handshake signatures made with it.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
