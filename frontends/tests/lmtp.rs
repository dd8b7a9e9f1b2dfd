//! LMTP end to end: Python's `smtplib.LMTP` (and a raw socket for what no client sends) against
//! the real server on loopback; messages are read back from the engine byte for byte.
#![allow(clippy::expect_used)] // helpers outside #[test] functions: a failed expectation fails the test

mod serve_support;

use mailvault_frontends::net::ListenerKind;
use serde_json::{Value, json};
use serve_support::{RawClient, TestServer};

/// A message that exercises dot-stuffing, 8-bit text and a blank line in the body.
fn sample_message(subject: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@example.org>\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nFirst line, grüße ☃\r\n.a line starting with a dot\r\n\
         ..two dots\r\n\r\n.\r\nlast line\r\n"
    )
    .into_bytes()
}

fn codes(replies: &Value) -> Vec<i64> {
    replies.as_array().expect("replies").iter().map(|reply| reply[0].as_i64().expect("code")).collect()
}

#[test]
fn delivers_byte_identical_copies_with_one_reply_per_recipient() {
    let server = TestServer::start();
    server.add_account("alice", "alice password");
    server.add_account("bob@example.org", "bob password");
    let message = sample_message("to two of three");
    let result = server.python(
        "lmtp_transaction",
        &json!({
            "sender": "sender@example.org",
            "recipients": ["alice@example.org", "nobody@example.org", "Bob@Example.org"],
            "message": hex::encode(&message),
            "mail_options": ["BODY=8BITMIME", format!("SIZE={}", message.len())],
        }),
    );
    let capabilities = result["lhlo"][1].as_str().expect("lhlo text");
    for capability in ["PIPELINING", "8BITMIME", "SIZE", "ENHANCEDSTATUSCODES", "STARTTLS"] {
        assert!(capabilities.contains(capability), "{capability} missing from {capabilities}");
    }
    assert_eq!(codes(&result["rcpt"]), [250, 550, 250], "{result}");
    assert!(result["rcpt"][1][1].as_str().expect("text").starts_with("5.1.1"), "{result}");
    assert_eq!(codes(&result["data"]), [250, 250], "{result}");
    assert!(result["data"][1][1].as_str().expect("text").contains("Bob@Example.org"), "{result}");
    assert_eq!(server.inbox("alice"), std::slice::from_ref(&message));
    assert_eq!(server.inbox("bob@example.org"), [message]);
}

#[test]
fn delivers_after_starttls() {
    let server = TestServer::start();
    server.add_account("alice", "alice password");
    let message = sample_message("over TLS");
    let result = server.python(
        "lmtp_transaction",
        &json!({
            "starttls": true,
            "sender": "",
            "recipients": ["alice@example.org"],
            "message": hex::encode(&message),
        }),
    );
    assert_eq!(result["starttls"][0], 220, "{result}");
    assert!(!result["lhlo_after_tls"][1].as_str().expect("text").contains("STARTTLS"), "{result}");
    assert_eq!(codes(&result["data"]), [250], "{result}");
    assert_eq!(server.inbox("alice"), [message]);
}

#[test]
fn oversized_message_is_refused_for_every_recipient_and_not_stored() {
    let server = TestServer::start_with(|config| config.lmtp.limits.message_bytes_max = 1000);
    server.add_account("alice", "alice password");
    server.add_account("bob", "bob password");
    let mut message = sample_message("too big");
    message.extend(std::iter::repeat_n(b'x', 2000));
    message.extend_from_slice(b"\r\n");
    let result = server.python(
        "lmtp_transaction",
        &json!({
            "sender": "sender@example.org",
            "recipients": ["alice@example.org", "bob@example.org"],
            "message": hex::encode(&message),
        }),
    );
    assert_eq!(codes(&result["data"]), [552, 552], "{result}");
    assert_eq!(result["quit"][0], 221, "the session carries on after the refusal: {result}");
    assert_eq!(server.message_count(), 0);
    // SIZE announced above the limit is refused at MAIL.
    let mut client = RawClient::connect(server.address(ListenerKind::Lmtp));
    client.smtp_reply();
    client.send(b"LHLO client.test\r\nMAIL FROM:<sender@example.org> SIZE=5000\r\n");
    client.smtp_reply();
    assert!(client.smtp_reply()[0].starts_with("552 5.3.4"));
}

#[test]
fn pipelined_transaction_gets_every_reply_in_order() {
    let server = TestServer::start();
    server.add_account("alice", "alice password");
    let message = sample_message("pipelined");
    let mut stuffed = Vec::new();
    mailvault_frontends::proto::dot_stuffing::stuff(&message, &mut stuffed);
    let mut client = RawClient::connect(server.address(ListenerKind::Lmtp));
    assert!(client.line().starts_with("220 "));
    client.send(b"LHLO client.test\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n");
    assert_eq!(client.smtp_reply().last().map(String::as_str), Some("250 STARTTLS"));
    assert!(client.line().starts_with("250 2.1.0"));
    assert!(client.line().starts_with("250 2.1.5"));
    assert!(client.line().starts_with("550 5.1.1"));
    assert!(client.line().starts_with("354 "));
    let mut body_and_quit = stuffed;
    body_and_quit.extend_from_slice(b"QUIT\r\n");
    client.send(&body_and_quit);
    assert!(client.line().starts_with("250 2.0.0 <alice@example.org>"));
    assert!(client.line().starts_with("221 2.0.0"));
    assert_eq!(server.inbox("alice"), [message]);
}

#[test]
fn bad_commands_get_errors_and_change_nothing() {
    let server = TestServer::start();
    server.add_account("alice", "alice password");
    let mut client = RawClient::connect(server.address(ListenerKind::Lmtp));
    client.line();
    let mut exchange = |command: &[u8]| {
        client.send(command);
        client.smtp_reply().last().cloned().unwrap_or_default()
    };
    assert!(exchange(b"MAIL FROM:<a@example.org>\r\n").starts_with("503 5.5.1"), "MAIL before LHLO");
    assert!(exchange(b"HELO client.test\r\n").starts_with("500 5.5.1"), "HELO is not LMTP");
    assert!(exchange(b"EHLO client.test\r\n").starts_with("500 5.5.1"), "EHLO is not LMTP");
    assert!(exchange(b"LHLO client.test\r\n").starts_with("250 "));
    assert!(exchange(b"RCPT TO:<alice@example.org>\r\n").starts_with("503 5.5.1"), "RCPT before MAIL");
    assert!(exchange(b"DATA\r\n").starts_with("503 5.5.1"), "DATA before MAIL");
    assert!(exchange(b"MAIL FROM:<not an address>\r\n").starts_with("501 5.1.7"));
    assert!(exchange(b"MAIL FROM:<a@example.org> FROB=1\r\n").starts_with("555 5.5.4"));
    let long_line = [b"NOOP ".as_slice(), &[b'x'; 5000], b"\r\n"].concat();
    assert!(exchange(&long_line).starts_with("500 5.5.2"), "over-long line");
    assert!(exchange(b"\x00\xff\x01garbage\r\n").starts_with("500 5.5.1"));
    assert!(exchange(b"MAIL FROM:<a@example.org>\r\n").starts_with("250 2.1.0"), "the session still works");
    assert!(exchange(b"DATA\r\n").starts_with("503 5.5.1"), "DATA without recipients");
    assert!(exchange(b"RCPT TO:<nobody@example.org>\r\n").starts_with("550 5.1.1"));
    assert!(exchange(b"VRFY alice\r\n").starts_with("252 "));
    assert!(exchange(b"RSET\r\n").starts_with("250 "));
    assert!(exchange(b"QUIT\r\n").starts_with("221 "));
    assert_eq!(server.message_count(), 0);
}

#[test]
fn starttls_discards_commands_sent_before_the_handshake() {
    let server = TestServer::start();
    let result = server.python("starttls_injection", &json!({"protocol": "lmtp"}));
    assert!(result["go_ahead"].as_str().expect("reply").starts_with("220 2.0.0"), "{result}");
    assert!(result["first_reply_in_tls"].as_str().expect("reply").starts_with("221 "), "{result}");
}

#[test]
fn a_full_disk_gets_a_temporary_452_and_the_retry_is_delivered_once_space_is_freed() {
    let disk = mailvault_engine::io::FaultController::new(25);
    let server = TestServer::start_on_faulty_disk(&disk);
    server.add_account("alice", "alice password");
    // A test segment's reservation (1 MiB) leaves less room than an append keeps free beyond
    // its body: this delivery needs space the full disk does not have.
    let message = sample_message("when the disk is full");
    let transaction = json!({
        "sender": "sender@example.org",
        "recipients": ["alice@example.org"],
        "message": hex::encode(&message),
    });

    disk.fill_disk();
    let refused = server.python("lmtp_transaction", &transaction);
    assert_eq!(codes(&refused["data"]), [452], "{refused}");
    assert!(refused["data"][0][1].as_str().expect("text").starts_with("4.3.1"), "{refused}");
    assert!(server.inbox("alice").is_empty(), "nothing of the refused message is stored");

    disk.free_disk();
    let delivered = server.python("lmtp_transaction", &transaction);
    assert_eq!(codes(&delivered["data"]), [250], "{delivered}");
    assert_eq!(server.inbox("alice"), [message]);
}
