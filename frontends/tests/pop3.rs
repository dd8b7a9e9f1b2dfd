//! POP3 end to end: Python's `poplib` (STLS and POP3S), curl's pop3s:// and pop3:// with STLS,
//! and a raw socket for malformed input, against the real server on loopback.
#![allow(clippy::expect_used)] // helpers outside #[test] functions: a failed expectation fails the test

mod serve_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use mailvault_engine::block_on;
use mailvault_frontends::admin::AdminCommand;
use mailvault_frontends::net::ListenerKind;
use mailvault_frontends::session::auth::RateLimit;
use serde_json::{Value, json};
use serve_support::{CLIENTS_SCRIPT, RawClient, TestServer, run_bounded, wait_bounded};

const PASSWORD: &str = "alice password";

fn message(number: u32) -> Vec<u8> {
    format!(
        "From: sender@example.org\r\nSubject: message {number}\r\n\r\nline one of {number}\r\n.dotted line\r\n\
         line three\r\nline four\r\n"
    )
    .into_bytes()
}

/// A server with alice and three messages in her INBOX.
fn server_with_mail() -> TestServer {
    let server = TestServer::start();
    server.add_account("alice", PASSWORD);
    for number in 1..=3 {
        server.append("alice", &message(number));
    }
    server
}

fn session(server: &TestServer, mode: &str, steps: &Value) -> Vec<Value> {
    let result = server.python("pop3_session", &json!({"mode": mode, "steps": steps}));
    result["results"].as_array().expect("results").clone()
}

fn ok(result: &Value) -> &Value {
    assert!(result.get("ok").is_some(), "expected success, got {result}");
    &result["ok"]
}

fn error(result: &Value) -> &str {
    result.get("error").and_then(Value::as_str).unwrap_or_else(|| panic!("expected -ERR, got {result}"))
}

fn bytes(result: &Value) -> Vec<u8> {
    hex::decode(ok(result).as_str().expect("hex")).expect("hex")
}

#[test]
fn stls_session_reads_messages_byte_identical_with_top_and_uidl() {
    let server = server_with_mail();
    let uid_validity = block_on(server.engine.list_mailboxes("alice")).expect("mailboxes")[0].uid_validity;
    let results = session(
        &server,
        "stls",
        &json!([
            ["user", "alice"],
            ["pass", PASSWORD],
            ["stat"],
            ["list"],
            ["uidl"],
            ["uidl", 2],
            ["retr", 1],
            ["retr", 2],
            ["retr", 3],
            ["top", 2, 0],
            ["top", 2, 2],
            ["quit"]
        ]),
    );
    let total: usize = (1..=3).map(|number| message(number).len()).sum();
    assert!(ok(&results[2]).as_str().expect("text").contains("3 messages"), "{results:?}");
    assert_eq!(ok(&results[3]), &json!([3, total]));
    assert_eq!(ok(&results[4]), &json!((1..=3).map(|n| format!("{n} {}", message(n).len())).collect::<Vec<_>>()));
    assert_eq!(ok(&results[5]), &json!((1..=3).map(|n| format!("{n} {uid_validity}-{n}")).collect::<Vec<_>>()));
    assert_eq!(ok(&results[6]), &json!(format!("+OK 2 {uid_validity}-2")));
    for number in 1..=3 {
        assert_eq!(bytes(&results[6 + number as usize]), message(number), "RETR {number}");
    }
    assert_eq!(bytes(&results[10]), b"From: sender@example.org\r\nSubject: message 2\r\n\r\n");
    assert_eq!(
        bytes(&results[11]),
        b"From: sender@example.org\r\nSubject: message 2\r\n\r\nline one of 2\r\n.dotted line\r\n"
    );
    assert_eq!(server.inbox("alice").len(), 3, "reading changes nothing");
}

#[test]
fn dele_then_quit_expunges_restorably_and_rset_or_disconnect_keeps_everything() {
    let server = server_with_mail();
    // RSET unmarks.
    let results =
        session(&server, "ssl", &json!([["user", "alice"], ["pass", PASSWORD], ["dele", 1], ["rset"], ["quit"]]));
    assert!(ok(&results[4]).as_str().expect("text").contains("3 messages"));
    assert_eq!(server.inbox("alice").len(), 3);
    // A session that ends without QUIT deletes nothing (RFC 1939 §6).
    let results = session(&server, "ssl", &json!([["user", "alice"], ["pass", PASSWORD], ["dele", 1], ["dele", 2]]));
    assert_eq!(results.len(), 5);
    assert_eq!(server.inbox("alice").len(), 3);
    // DELE + QUIT expunges; the deleted messages stay restorable.
    let results = session(
        &server,
        "ssl",
        &json!([
            ["user", "alice"],
            ["pass", PASSWORD],
            ["dele", 1],
            ["dele", 3],
            ["dele", 3],
            ["retr", 1],
            ["stat"],
            ["quit"]
        ]),
    );
    assert_eq!(error(&results[5]), "-ERR no such message", "DELE twice");
    assert_eq!(error(&results[6]), "-ERR no such message", "RETR of a deleted message");
    assert_eq!(ok(&results[7]), &json!([1, message(2).len()]));
    assert!(ok(&results[8]).as_str().expect("text").contains("2 messages deleted"), "{results:?}");
    assert_eq!(server.inbox("alice"), [message(2)]);
    let deleted = block_on(server.engine.list_deleted("alice")).expect("deleted");
    let mut uids: Vec<u32> = deleted.iter().map(|message| message.id.uid).collect();
    uids.sort_unstable();
    assert_eq!(uids, [1, 3]);
    assert!(deleted.iter().all(|message| message.mailbox_name == "INBOX"));
}

#[test]
fn no_plaintext_authentication_before_stls() {
    let server = server_with_mail();
    let results = session(
        &server,
        "plain",
        &json!([
            ["capa"],
            ["user", "alice"],
            ["pass", PASSWORD],
            ["auth_plain", "alice", PASSWORD, true],
            ["stat"],
            ["stls"],
            ["capa"],
            ["user", "alice"],
            ["pass", PASSWORD],
            ["stat"],
            ["quit"]
        ]),
    );
    let capabilities = ok(&results[1]).as_object().expect("capabilities");
    assert!(capabilities.contains_key("STLS"));
    assert!(!capabilities.contains_key("USER") && !capabilities.contains_key("SASL"), "{capabilities:?}");
    for refused in &results[2..=4] {
        assert!(error(refused).contains("no plaintext authentication"), "{refused}");
    }
    assert!(error(&results[5]).starts_with("-ERR"), "STAT before login");
    let capabilities = ok(&results[7]).as_object().expect("capabilities");
    assert!(capabilities.contains_key("USER") && !capabilities.contains_key("STLS"), "{capabilities:?}");
    assert_eq!(ok(&results[10]), &json!([3, (1..=3).map(|n| message(n).len()).sum::<usize>()]));
    // Nothing was logged for the refused attempts: the password was never looked at.
    let log = block_on(server.engine.access_log("alice", 10)).expect("access log");
    assert_eq!(log.len(), 1);
    assert!(log[0].success);
}

#[test]
fn auth_plain_with_and_without_initial_response() {
    let server = server_with_mail();
    for initial in [true, false] {
        let results = session(&server, "ssl", &json!([["auth_plain", "alice", PASSWORD, initial], ["stat"], ["quit"]]));
        assert!(ok(&results[1]).as_str().expect("text").starts_with("+OK maildrop has 3"), "{results:?}");
        let results = session(&server, "ssl", &json!([["auth_plain", "alice", "wrong", initial], ["stat"]]));
        assert!(error(&results[1]).starts_with("-ERR [AUTH]"), "{results:?}");
    }
    let log = block_on(server.engine.access_log("alice", 10)).expect("access log");
    assert_eq!(log.len(), 4);
    assert!(log.iter().all(|event| event.method == "AUTH PLAIN" && event.protocol == "pop3"));
}

#[test]
fn wrong_password_is_rejected_and_every_attempt_is_logged() {
    let server = server_with_mail();
    let app_password = server.add_app_password("alice", "phone");
    let results = session(&server, "ssl", &json!([["user", "alice"], ["pass", "not the password"], ["stat"]]));
    assert_eq!(error(&results[2]), "-ERR [AUTH] invalid user name or password");
    assert!(error(&results[3]).starts_with("-ERR"), "no transaction state after a failed login");
    let results = session(&server, "ssl", &json!([["user", "nobody"], ["pass", "whatever"]]));
    assert_eq!(error(&results[2]), "-ERR [AUTH] invalid user name or password", "unknown users look the same");
    let results = session(&server, "stls", &json!([["user", "alice"], ["pass", app_password], ["stat"], ["quit"]]));
    assert_eq!(ok(&results[3]), &json!([3, (1..=3).map(|n| message(n).len()).sum::<usize>()]));
    let log = block_on(server.engine.access_log("alice", 10)).expect("access log");
    assert_eq!(log.len(), 2, "{log:?}");
    let (newest, oldest) = (&log[0], &log[1]);
    assert!(newest.success && newest.method == "USER/PASS app-password:phone", "{newest:?}");
    assert!(!oldest.success && oldest.method == "USER/PASS", "{oldest:?}");
    assert!(log.iter().all(|event| event.remote_ip == "127.0.0.1" && event.protocol == "pop3"));
    assert!(newest.at_unix_ms >= oldest.at_unix_ms);
}

#[test]
fn failed_login_rate_limit_kicks_in_per_account_and_ip() {
    let server = TestServer::start_with(|config| {
        config.rate_limit = RateLimit { failures_max: 3, window: Duration::from_secs(600) };
    });
    server.add_account("alice", PASSWORD);
    server.add_account("bob", "bob password");
    let steps: Vec<Value> = (0..3).map(|_| json!(["pass", "wrong"])).collect();
    let mut all = vec![json!(["user", "alice"])];
    for step in steps {
        all.push(step);
        all.push(json!(["user", "alice"]));
    }
    all.push(json!(["pass", PASSWORD]));
    let results = session(&server, "ssl", &Value::Array(all));
    for index in [2, 4, 6] {
        assert!(error(&results[index]).starts_with("-ERR [AUTH]"), "{results:?}");
    }
    assert!(error(&results[8]).starts_with("-ERR [LOGIN-DELAY]"), "the right password is refused too: {results:?}");
    let results = session(&server, "ssl", &json!([["user", "bob"], ["pass", "bob password"], ["quit"]]));
    assert!(ok(&results[2]).as_str().expect("text").starts_with("+OK"), "other accounts are unaffected");
    let log = block_on(server.engine.access_log("alice", 10)).expect("access log");
    assert_eq!(log.len(), 3, "refused attempts are not checked, so not logged as checked: {log:?}");
}

#[test]
fn remote_logout_ends_a_live_session_and_revokes_app_passwords() {
    let server = server_with_mail();
    let app_password = server.add_app_password("alice", "laptop");
    let arguments = json!({
        "mode": "ssl",
        "steps": [["user", "alice"], ["pass", app_password], ["dele", 1], ["wait"], ["stat"], ["quit"]],
        "pop3s_port": server.port(ListenerKind::Pop3Tls),
        "pop3_port": server.port(ListenerKind::Pop3),
        "cafile": server.certificate().display().to_string(),
    });
    let mut child = Command::new("python3")
        .arg(CLIENTS_SCRIPT)
        .arg("pop3_session")
        .arg(arguments.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("waiting line");
    assert!(line.contains("waiting"), "{line}");
    assert_eq!(server.server().registry().sessions().iter().filter(|session| session.account.is_some()).count(), 1);
    let output = server.admin(AdminCommand::Logout { account: "alice".to_owned() });
    assert_eq!(output, "alice logged out: 1 app passwords revoked, 1 live sessions ended");
    child.stdin.take().expect("stdin").write_all(b"go\n").expect("go");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("result");
    let output = wait_bounded(child, serve_support::CLIENT_TIMEOUT);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_str(rest.trim()).expect("json");
    let after = &result["results"][5];
    assert!(after["error"].as_str().is_some_and(|text| text.contains("remote logout")), "{result}");
    assert_eq!(server.inbox("alice").len(), 3, "the ended session's DELE was not applied");
    let results = session(&server, "ssl", &json!([["user", "alice"], ["pass", app_password]]));
    assert!(error(&results[2]).starts_with("-ERR [AUTH]"), "the app password is revoked");
    let results = session(&server, "ssl", &json!([["user", "alice"], ["pass", PASSWORD], ["quit"]]));
    assert!(ok(&results[2]).as_str().expect("text").starts_with("+OK"), "the account password still works");
}

#[test]
fn maildrop_is_locked_while_a_session_holds_it() {
    let server = server_with_mail();
    let arguments = json!({
        "mode": "ssl",
        "steps": [["user", "alice"], ["pass", PASSWORD], ["wait"], ["quit"]],
        "pop3s_port": server.port(ListenerKind::Pop3Tls),
        "pop3_port": server.port(ListenerKind::Pop3),
        "cafile": server.certificate().display().to_string(),
    });
    let mut child = Command::new("python3")
        .arg(CLIENTS_SCRIPT)
        .arg("pop3_session")
        .arg(arguments.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("waiting line");
    let results = session(&server, "ssl", &json!([["user", "alice"], ["pass", PASSWORD]]));
    assert!(error(&results[2]).starts_with("-ERR [IN-USE]"), "{results:?}");
    child.stdin.take().expect("stdin").write_all(b"go\n").expect("go");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("result");
    let output = wait_bounded(child, serve_support::CLIENT_TIMEOUT);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(rest.contains("signing off"), "{rest}");
}

#[test]
fn curl_retrieves_byte_identical_messages_over_pop3s_and_stls() {
    let server = server_with_mail();
    let certificate = server.certificate();
    for (url, extra) in [
        (format!("pop3s://127.0.0.1:{}/2", server.port(ListenerKind::Pop3Tls)), None),
        (format!("pop3://127.0.0.1:{}/3", server.port(ListenerKind::Pop3)), Some("--ssl-reqd")),
    ] {
        let mut command = Command::new("curl");
        command.args(["--silent", "--show-error", "--max-time", "30", "--cacert"]).arg(&certificate);
        command.args(["--user", &format!("alice:{PASSWORD}")]).arg(&url);
        if let Some(extra) = extra {
            command.arg(extra);
        }
        let output = run_bounded(&mut command, b"");
        assert!(output.status.success(), "{url}: {}", String::from_utf8_lossy(&output.stderr));
        let number = if url.ends_with("/2") { 2 } else { 3 };
        assert_eq!(output.stdout, message(number), "{url}");
    }
    // Without --ssl-reqd, curl would log in over plaintext if the server allowed it; it does not.
    let mut command = Command::new("curl");
    command.args(["--silent", "--max-time", "30", "--user", &format!("alice:{PASSWORD}")]);
    command.arg(format!("pop3://127.0.0.1:{}/1", server.port(ListenerKind::Pop3)));
    let output = run_bounded(&mut command, b"");
    assert!(!output.status.success(), "plaintext login must fail");
}

#[test]
fn bad_commands_get_errors_and_change_nothing() {
    let server = server_with_mail();
    let mut client = RawClient::connect(server.address(ListenerKind::Pop3));
    assert!(client.line().starts_with("+OK"));
    let mut exchange = |command: &[u8]| {
        client.send(command);
        client.line()
    };
    for command in [
        &b"RETR 1\r\n"[..],
        b"DELE 1\r\n",
        b"QUIZ\r\n",
        b"RETR 0\r\n",
        b"TOP 1\r\n",
        b"LIST 1 2\r\n",
        b"\xff\xfe\r\n",
        b"PASS without user\r\n",
        b"AUTH CRAM-MD5\r\n",
    ] {
        let reply = exchange(command);
        assert!(reply.starts_with("-ERR"), "{command:?}: {reply}");
    }
    let long_line = [b"NOOP ".as_slice(), &[b'x'; 5000], b"\r\n"].concat();
    assert_eq!(exchange(&long_line), "-ERR line too long");
    assert!(exchange(b"QUIT\r\n").starts_with("+OK"));
    assert_eq!(server.inbox("alice").len(), 3);
    // Over TLS, after login: out-of-range numbers and wrong states.
    let results = session(
        &server,
        "ssl",
        &json!([
            ["user", "alice"],
            ["pass", PASSWORD],
            ["retr", 9],
            ["dele", 9],
            ["top", 4, 1],
            ["raw", "USER bob"],
            ["raw", "STLS"],
            ["raw", "RETR 99999999999"],
            ["list"],
            ["quit"]
        ]),
    );
    for result in &results[3..=8] {
        assert!(error(result).starts_with("-ERR"), "{result}");
    }
    assert_eq!(server.inbox("alice").len(), 3);
    assert_eq!(server.message_count(), 3);
}

#[test]
fn stls_discards_commands_sent_before_the_handshake() {
    let server = TestServer::start();
    let result = server.python("starttls_injection", &json!({"protocol": "pop3"}));
    assert!(result["go_ahead"].as_str().expect("reply").starts_with("+OK"), "{result}");
    assert!(result["first_reply_in_tls"].as_str().expect("reply").contains("signing off"), "{result}");
}
