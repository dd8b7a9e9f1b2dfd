//! The TLS policy as `openssl s_client` sees it: TLS 1.3 and ECDHE-AEAD TLS 1.2 work (implicit
//! TLS, STLS, STARTTLS), suites without forward secrecy are refused, with the generated
//! certificate and with an operator's RSA certificate (where RSA key exchange would be possible).
#![allow(clippy::expect_used)] // helpers outside #[test] functions: a failed expectation fails the test

mod serve_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use mailvault_frontends::net::ListenerKind;
use mailvault_frontends::net::tls::CertificateSource;
use serve_support::{TestServer, run_bounded};

fn s_client(port: u16, certificate: &Path, options: &[&str]) -> Output {
    let mut command = Command::new("openssl");
    command.args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-CAfile"]).arg(certificate);
    command.args(["-verify_return_error", "-servername", "localhost"]).args(options);
    run_bounded(&mut command, b"")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn assert_handshake(output: &Output, protocol: &str, cipher: &str) {
    let text = text(output);
    assert!(output.status.success(), "handshake failed:\n{text}");
    assert!(text.contains(&format!("New, {protocol}, Cipher is {cipher}")), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
}

fn assert_refused(output: &Output) {
    let text = text(output);
    assert!(!output.status.success(), "handshake should fail:\n{text}");
    assert!(text.contains("Cipher is (NONE)") || text.contains("handshake failure"), "{text}");
}

#[test]
fn generated_certificate_offers_only_forward_secret_suites() {
    let server = TestServer::start();
    let certificate = server.certificate();
    let pop3s = server.port(ListenerKind::Pop3Tls);
    assert_handshake(&s_client(pop3s, &certificate, &["-tls1_3"]), "TLSv1.3", "TLS_AES_256_GCM_SHA384");
    assert_handshake(
        &s_client(pop3s, &certificate, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"]),
        "TLSv1.2",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
    );
    for cipher in ["AES256-SHA", "AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-SHA", "DHE-RSA-AES256-GCM-SHA384"] {
        assert_refused(&s_client(pop3s, &certificate, &["-tls1_2", "-cipher", cipher]));
    }
    assert_refused(&s_client(pop3s, &certificate, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]));
    // The same policy behind STLS and STARTTLS.
    let pop3 = server.port(ListenerKind::Pop3);
    assert_handshake(&s_client(pop3, &certificate, &["-starttls", "pop3"]), "TLSv1.3", "TLS_AES_256_GCM_SHA384");
    assert_refused(&s_client(pop3, &certificate, &["-starttls", "pop3", "-tls1_2", "-cipher", "AES256-SHA"]));
    let lmtp = server.port(ListenerKind::Lmtp);
    assert_handshake(&s_client(lmtp, &certificate, &["-starttls", "lmtp"]), "TLSv1.3", "TLS_AES_256_GCM_SHA384");
}

#[test]
fn generated_certificate_lives_beside_the_store_with_a_private_key() {
    let server = TestServer::start();
    let directory = server.data_dir.parent().expect("parent").join("tls");
    assert_eq!(server.certificate(), directory.join("cert.pem"));
    let mode = |path: &Path| std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&directory), 0o700);
    assert_eq!(mode(&directory.join("key.pem")), 0o600);
    assert!(server.server().generated_certificate());
}

#[test]
fn operator_rsa_certificate_refuses_rsa_key_exchange() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (certificate, key) = (directory.path().join("operator.pem"), directory.path().join("operator.key"));
    let mut command = Command::new("openssl");
    command.args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"]);
    command
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&certificate);
    let output = run_bounded(&mut command, b"");
    assert!(output.status.success(), "{}", text(&output));
    let files = CertificateSource::Files { certificate: certificate.clone(), key };
    let server = TestServer::start_with(move |config| config.certificate = files);
    assert_eq!(server.certificate(), certificate);
    assert!(!server.server().generated_certificate());
    let pop3s = server.port(ListenerKind::Pop3Tls);
    assert_handshake(
        &s_client(pop3s, &certificate, &["-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384"]),
        "TLSv1.2",
        "ECDHE-RSA-AES256-GCM-SHA384",
    );
    assert_handshake(&s_client(pop3s, &certificate, &["-tls1_3"]), "TLSv1.3", "TLS_AES_256_GCM_SHA384");
    for cipher in ["AES256-SHA", "AES256-GCM-SHA384", "AES128-SHA256", "ECDHE-RSA-AES256-SHA"] {
        assert_refused(&s_client(pop3s, &certificate, &["-tls1_2", "-cipher", cipher]));
    }
}
