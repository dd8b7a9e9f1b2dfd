//! IMAP through the real server (`RunningServer`: `SO_REUSEPORT` listeners on two workers,
//! the generated certificate, two shards, the HSM-peppered password the CLI sets): imaplib
//! scenarios, curl checking the certificate, and shutdown telling idle clients BYE.

mod imap_harness;
mod serve_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use imap_harness::{ACCOUNT, PASSWORD, curl_checked, run_scenario_at};
use mailvault_frontends::net::ListenerKind;
use serve_support::TestServer;

const MESSAGE: &[u8] = b"From: ann@example.com\r\nSubject: through the server\r\n\r\nHello over imaps.\r\n";

fn server() -> TestServer {
    let server = TestServer::start();
    server.add_account(ACCOUNT, PASSWORD);
    server
}

#[test]
fn imaplib_scenarios_through_the_server() {
    // A server each: the scenarios expect an empty account.
    for scenario in ["starttls", "append_fetch", "copy_move_expunge", "search"] {
        let server = server();
        run_scenario_at(server.port(ListenerKind::Imap), server.port(ListenerKind::ImapTls), scenario);
    }
}

#[test]
fn curl_checks_the_certificate_and_fetches_byte_identical() {
    let server = server();
    let uid = server.append(ACCOUNT, MESSAGE);
    let certificate = server.certificate().display().to_string();
    for (kind, scheme, upgrade) in
        [(ListenerKind::ImapTls, "imaps", None), (ListenerKind::Imap, "imap", Some("--ssl-reqd"))]
    {
        let port = server.port(kind);
        let resolve = format!("localhost:{port}:127.0.0.1");
        let mut tls = vec!["--cacert", &certificate, "--resolve", &resolve];
        tls.extend(upgrade);
        let output = curl_checked(&tls, &[&format!("{scheme}://localhost:{port}/INBOX;UID={uid}")]);
        assert!(output.status.success(), "{scheme}: {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(output.stdout, MESSAGE, "{scheme}: byte-identical");
    }
}

#[test]
fn shutdown_says_bye_to_imap_clients() {
    let mut server = server();
    let stream = TcpStream::connect(server.address(ListenerKind::Imap)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut lines = BufReader::new(stream).lines();
    assert!(lines.next().expect("greeting").expect("greeting").starts_with("* OK"));
    writer.write_all(b"a NOOP\r\n").expect("send");
    assert_eq!(lines.next().expect("reply").expect("reply"), "a OK NOOP completed");
    server.stop();
    assert_eq!(lines.next().expect("BYE").expect("BYE"), "* BYE Server shutting down");
    assert!(lines.next().is_none(), "closed after BYE");
}
