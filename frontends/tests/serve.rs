//! The server as a whole: the built `mailvault serve` binary stopped by SIGTERM in the middle of
//! a stream of deliveries (every acknowledged message is durable, nothing is half-stored), a
//! client caught mid-DATA by a shutdown, and the connection limit.
#![allow(clippy::expect_used)] // helpers outside #[test] functions: a failed expectation fails the test

mod serve_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mailvault_engine::{Engine, EngineConfig, INBOX, block_on};
use mailvault_frontends::net::ListenerKind;
use mailvault_hsm::testing::TestToken;
use serde_json::{Value, json};
use serve_support::{
    CLIENT_TIMEOUT, CLIENTS_SCRIPT, RawClient, ServerProcess, TestServer, init_with_account, run_bounded,
};

/// The message `lmtp_deliver_many` sends as number `number`.
fn numbered_message(number: u64) -> Vec<u8> {
    format!("Message-Id: <{number}@mailvault.test>\r\nSubject: message {number}\r\n\r\n{}\r\n", "x".repeat(2000))
        .into_bytes()
}

/// Acknowledgements to wait for before sending SIGTERM.
const ACKNOWLEDGED_BEFORE_SIGTERM: usize = 40;
/// Parallel LMTP connections, so that SIGTERM finds deliveries at every stage.
const CONNECTIONS: usize = 4;

#[test]
fn sigterm_during_deliveries_keeps_every_acknowledged_message() {
    let token = TestToken::create_with_keys();
    let directory = tempfile::tempdir().expect("temporary directory");
    let data_dir = directory.path().join("data");
    init_with_account(&token, &data_dir, "alice");
    let mut server = ServerProcess::start(&token, &data_dir);
    let arguments = json!({
        "lmtp_port": server.port("lmtp"),
        "recipient": "alice@example.org",
        "count": 5000,
        "seconds": 50,
        "connections": CONNECTIONS,
    });
    let mut client = Command::new("python3")
        .arg(CLIENTS_SCRIPT)
        .arg("lmtp_deliver_many")
        .arg(arguments.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let stdout = BufReader::new(client.stdout.take().expect("stdout"));
    let mut acknowledged = Vec::new();
    let mut result = Value::Null;
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    for line in stdout.lines().map_while(Result::ok) {
        assert!(Instant::now() < deadline, "deliveries took too long");
        let value: Value = serde_json::from_str(&line).expect("json line");
        if let Some(number) = value.get("acknowledged").and_then(Value::as_u64) {
            acknowledged.push(number);
            if acknowledged.len() == ACKNOWLEDGED_BEFORE_SIGTERM {
                server.terminate();
            }
        } else {
            result = value;
        }
    }
    let client_output = serve_support::wait_bounded(client, CLIENT_TIMEOUT);
    assert!(client_output.status.success(), "{}", String::from_utf8_lossy(&client_output.stderr));
    assert!(acknowledged.len() >= ACKNOWLEDGED_BEFORE_SIGTERM, "{result}");
    assert!(acknowledged.len() < 5000, "the server stopped accepting: {result}");
    assert!(!result["refused"].as_array().expect("refused").is_empty(), "{result}");
    eprintln!("acknowledged {} before the server stopped; client result {result}", acknowledged.len());
    let (status, rest) = server.wait(Duration::from_secs(60));
    assert!(status.success(), "server exit: {status}");
    assert!(rest.iter().any(|line| line == "mailvault stopped"), "{rest:?}");

    // Reopen the store: everything acknowledged is there, byte for byte, and nothing else is
    // there but whole messages that were sent.
    let engine = Engine::open(&EngineConfig::new(&data_dir), &token.hsm).expect("reopen");
    let stored: Vec<Vec<u8>> = block_on(async {
        let (_, messages) = engine.list_messages("alice", INBOX).await.expect("list");
        let mut bodies = Vec::new();
        for message in messages {
            bodies.push(engine.fetch("alice", INBOX, message.uid).await.expect("fetch").body);
        }
        bodies
    });
    for number in &acknowledged {
        assert!(stored.contains(&numbered_message(*number)), "acknowledged message {number} is missing");
    }
    // Each connection stops at its first refusal, so no number past those was ever sent.
    let refused_numbers = result["refused"].as_array().expect("refused").iter().filter_map(|entry| entry[0].as_u64());
    let highest_sent = acknowledged.iter().copied().chain(refused_numbers).max().unwrap_or(0);
    for body in &stored {
        assert!(
            (0..=highest_sent).any(|number| numbered_message(number) == *body),
            "a stored message is not one that was sent whole"
        );
    }
    assert!(
        stored.len() <= acknowledged.len() + CONNECTIONS,
        "at most one unacknowledged in-flight message per connection may be extra"
    );
}

#[test]
fn shutdown_tells_a_client_mid_data_to_retry_and_stores_nothing() {
    let mut server = TestServer::start();
    server.add_account("alice", "alice password");
    let mut client = RawClient::connect(server.address(ListenerKind::Lmtp));
    client.line();
    client.send(b"LHLO client.test\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n");
    client.smtp_reply();
    client.line();
    client.line();
    assert!(client.line().starts_with("354 "));
    client.send(b"Subject: half\r\n\r\nthe first half of a message, and then");
    server.stop();
    assert!(client.line().starts_with("421 4.3.2"), "the client is told to retry");
    assert_eq!(client.line(), "", "and the connection is closed");
    assert_eq!(server.message_count(), 0);
}

/// A log read from a file or a journal is plain text: colour codes only go to a terminal.
#[test]
fn the_log_written_to_a_file_has_no_colour_codes() {
    let token = TestToken::create_with_keys();
    let directory = tempfile::tempdir().expect("temporary directory");
    let data_dir = directory.path().join("data");
    init_with_account(&token, &data_dir, "alice");
    let log_path = directory.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut server = ServerProcess::start_logging_to(&token, &data_dir, log);
    server.terminate();
    let (status, _) = server.wait(CLIENT_TIMEOUT);
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&log_path).expect("read the log");
    assert!(log.contains("INFO") && log.contains("scrub pass"), "the log has the start-up lines: {log}");
    assert!(!log.contains('\u{1b}'), "no escape sequences: {log:?}");
}

#[test]
fn a_stopped_server_refuses_new_connections() {
    let mut server = TestServer::start();
    let address = server.address(ListenerKind::Pop3);
    let mut client = RawClient::connect(address);
    assert!(client.line().starts_with("+OK"));
    server.stop();
    assert!(client.line().starts_with("-ERR [SYS/TEMP] server shutting down"));
    assert!(std::net::TcpStream::connect(address).is_err(), "the listening socket is closed");
}

#[test]
fn connections_past_the_limit_are_told_to_come_back_later() {
    let server = TestServer::start_with(|config| config.connections_max = 2);
    let mut first = RawClient::connect(server.address(ListenerKind::Pop3));
    let mut second = RawClient::connect(server.address(ListenerKind::Lmtp));
    assert!(first.line().starts_with("+OK"));
    assert!(second.line().starts_with("220 "));
    let mut refused = RawClient::connect(server.address(ListenerKind::Lmtp));
    assert_eq!(refused.line(), "421 4.3.2 Too many connections, try again later");
    assert_eq!(refused.line(), "");
    let mut refused = RawClient::connect(server.address(ListenerKind::Pop3));
    assert_eq!(refused.line(), "-ERR [SYS/TEMP] too many connections, try again later");
    first.send(b"QUIT\r\n");
    assert!(first.line().starts_with("+OK"));
    assert_eq!(first.line(), "");
    // The slot is free again once the first session has ended.
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        let mut client = RawClient::connect(server.address(ListenerKind::Pop3));
        if client.line().starts_with("+OK") {
            break;
        }
        assert!(Instant::now() < deadline, "the connection slot was not released");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn idle_clients_are_disconnected() {
    let server = TestServer::start_with(|config| {
        config.lmtp.idle_timeout = Duration::from_millis(500);
        config.pop3.idle_timeout = Duration::from_millis(500);
    });
    let mut lmtp = RawClient::connect(server.address(ListenerKind::Lmtp));
    let mut pop3 = RawClient::connect(server.address(ListenerKind::Pop3));
    assert!(lmtp.line().starts_with("220 "));
    assert!(pop3.line().starts_with("+OK"));
    assert_eq!(lmtp.line(), "421 4.4.2 Idle timeout");
    assert_eq!(lmtp.line(), "");
    assert_eq!(pop3.line(), "", "RFC 1939: closed without a response");
    assert_eq!(server.server().registry().connection_count(), 0);
}

#[test]
fn every_listener_answers_through_the_binary() {
    let token = TestToken::create_with_keys();
    let directory = tempfile::tempdir().expect("temporary directory");
    let data_dir = directory.path().join("data");
    let server = ServerProcess::start(&token, &data_dir);
    for name in ["lmtp", "pop3", "imap"] {
        let address = server.listening.iter().find(|(listening, _)| listening == name).expect("listener").1;
        let mut client = RawClient::connect(address);
        let greeting = client.line();
        let expected = match name {
            "lmtp" => "220 ",
            "pop3" => "+OK",
            _ => "* OK",
        };
        assert!(greeting.starts_with(expected), "{name}: {greeting}");
    }
    let certificate = directory.path().join("tls/cert.pem");
    for name in ["pop3s", "imaps"] {
        let mut command = Command::new("openssl");
        command.args(["s_client", "-connect", &format!("127.0.0.1:{}", server.port(name)), "-CAfile"]);
        command.arg(&certificate).arg("-verify_return_error");
        let output = run_bounded(&mut command, b"");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && text.contains("Verify return code: 0 (ok)"), "{name}: {text}");
    }
}
