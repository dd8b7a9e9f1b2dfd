//! IMAP end to end with clients that are not ours, over loopback TLS: Python's `imaplib`
//! drives each command group (`imap_client.py`), `curl` fetches over imaps:// and STARTTLS,
//! and the store is checked afterwards through the engine.

mod imap_harness;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use imap_harness::{ACCOUNT, ImapServer, curl};
use mailvault_engine::{Flags, block_on};
use mailvault_frontends::session::context::ProtocolSettings;
use mailvault_frontends::session::imap::ImapOptions;
use mailvault_frontends::session::registry::Protocol;

const DELIVERED: &[u8] = b"From: Postmaster <postmaster@example.com>\r\nTo: alice@example.org\r\n\
    Subject: Delivered while you idled\r\n\r\nA message delivered through the engine.\r\n";

#[test]
fn starttls_is_required_before_login() {
    let server = ImapServer::start();
    server.run_scenario("starttls");
    server.run_scenario("starttls_injection");
}

#[test]
fn authenticate_plain_and_the_access_log() {
    let server = ImapServer::start();
    server.run_scenario("authenticate");
    let log = block_on(server.engine.access_log(ACCOUNT, 10)).expect("access log");
    let entries: Vec<(&str, &str, bool)> =
        log.iter().map(|event| (event.protocol.as_str(), event.method.as_str(), event.success)).collect();
    assert!(entries.contains(&("imap", "AUTHENTICATE PLAIN", true)), "{entries:?}");
    assert!(entries.contains(&("imap", "LOGIN", false)), "{entries:?}");
    assert!(log.iter().all(|event| event.remote_ip == "127.0.0.1"), "{log:?}");
}

#[test]
fn mailbox_commands() {
    let server = ImapServer::start();
    server.run_scenario("mailboxes");
    let names: Vec<String> = block_on(server.engine.list_mailboxes(ACCOUNT))
        .expect("mailboxes")
        .into_iter()
        .map(|mailbox| mailbox.name)
        .collect();
    for name in ["INBOX", "Projects", "Archive", "Entwürfe"] {
        assert!(names.iter().any(|known| known == name), "{name} in {names:?}");
    }
    assert!(!names.iter().any(|name| name.starts_with("Work")), "{names:?}");
}

#[test]
fn append_then_fetch_is_byte_identical() {
    let server = ImapServer::start();
    let stdout = server.run_scenario("append_fetch");
    let uid: u32 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("RESULT uid "))
        .and_then(|uid| uid.parse().ok())
        .expect("the scenario reports the uid");
    let stored = block_on(server.engine.fetch(ACCOUNT, "INBOX", uid)).expect("fetch");
    assert!(stored.body.starts_with(b"From: Ann Example <ann@example.com>\r\n"));
    assert!(stored.info.flags.contains(Flags::FLAGGED | Flags::SEEN), "{:?}", stored.info.flags);
}

#[test]
fn one_fetch_of_many_bodies_answers_each_in_order() {
    let server = ImapServer::start();
    server.run_scenario("fetch_many");
}

#[test]
fn flags_store_and_fetch() {
    ImapServer::start().run_scenario("flags");
}

#[test]
fn copy_move_expunge_and_restore() {
    let server = ImapServer::start();
    server.run_scenario("copy_move_expunge");
    let deleted = block_on(server.engine.list_deleted(ACCOUNT)).expect("deleted messages");
    assert_eq!(deleted.len(), 3, "expunged messages stay restorable: {deleted:?}");
    let from_inbox = deleted.iter().find(|message| message.mailbox_name == "INBOX").expect("one from INBOX");
    let (mailbox, _) = block_on(server.engine.restore(ACCOUNT, from_inbox.id)).expect("restore");
    assert_eq!(mailbox, "INBOX");
    let (info, _) = block_on(server.engine.list_messages(ACCOUNT, "INBOX")).expect("INBOX");
    assert_eq!(info.messages, 2, "the restored message is back");
}

#[test]
fn search_over_flags_headers_bodies_and_dates() {
    ImapServer::start().run_scenario("search");
}

#[test]
fn a_search_over_its_budget_is_refused() {
    let options = ImapOptions {
        idle_poll_interval: Duration::from_millis(100),
        search_messages_max: 2,
        search_bytes_max: 15_000,
        ..ImapOptions::default()
    };
    ImapServer::start_with_options(ProtocolSettings::default_for(Protocol::Imap), options)
        .run_scenario("search_limits");
}

#[test]
fn idle_reports_a_delivery_and_other_sessions_changes() {
    let server = ImapServer::start();
    server.deliver(DELIVERED);
    server.run_scenario_with("idle", "IDLING", || {
        server.deliver(DELIVERED);
    });
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let server = ImapServer::start();
    server.run_scenario("bad_input");
    let mailboxes = block_on(server.engine.list_mailboxes(ACCOUNT)).expect("mailboxes");
    assert_eq!(mailboxes.len(), 1, "only INBOX: {mailboxes:?}");
    assert_eq!(mailboxes[0].messages, 0, "nothing was appended");
}

#[test]
fn curl_fetches_over_imaps_and_starttls() {
    let server = ImapServer::start();
    let uid = server.deliver(DELIVERED);
    let implicit = format!("imaps://127.0.0.1:{}/INBOX;UID={uid}", server.implicit_tls.port());
    let output = curl(&[&implicit]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.stdout, DELIVERED, "byte-identical over imaps://");
    let upgraded = format!("imap://127.0.0.1:{}/INBOX;UID={uid}", server.plain.port());
    let output = curl(&["--ssl-reqd", &upgraded]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.stdout, DELIVERED, "byte-identical after STARTTLS");
    let listing = curl(&[&format!("imaps://127.0.0.1:{}/", server.implicit_tls.port())]);
    assert!(String::from_utf8_lossy(&listing.stdout).contains("INBOX"), "{listing:?}");
    // Without TLS, curl cannot log in: the server refuses plaintext passwords.
    let plaintext = curl(&[&format!("imap://127.0.0.1:{}/INBOX;UID={uid}", server.plain.port())]);
    assert!(!plaintext.status.success(), "plaintext login must fail: {plaintext:?}");
}

#[test]
fn remote_logout_ends_the_session() {
    let server = ImapServer::start();
    server.run_scenario_with("remote_logout", "LOGGED-IN", || {
        assert_eq!(server.registry.end_account(ACCOUNT), 1, "one live IMAP session of the account");
    });
}

#[test]
fn a_silent_client_is_logged_out() {
    let mut settings = ProtocolSettings::default_for(Protocol::Imap);
    settings.idle_timeout = Duration::from_millis(300);
    let server = ImapServer::start_with(settings);
    let stream = std::net::TcpStream::connect(server.plain).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut lines = BufReader::new(stream).lines();
    let greeting = lines.next().expect("greeting").expect("greeting");
    assert!(greeting.starts_with("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED"), "{greeting}");
    let farewell = lines.next().expect("farewell").expect("farewell");
    assert!(farewell.starts_with("* BYE Autologout"), "{farewell}");
    assert!(lines.next().is_none(), "closed after BYE");
}
