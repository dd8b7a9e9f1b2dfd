//! `ServerConfig::frontends_on_shards` (`mailvault serve --frontends-on-shards`): the listeners
//! and their sessions run on the engine shards' threads, with no listener thread of their own.
//! Real clients (smtplib.LMTP with STARTTLS, poplib with STLS, imaplib over TLS) deliver to and
//! read from accounts on both shards, so sessions reach their own shard and the other one.
#![allow(clippy::expect_used)] // helpers outside #[test] functions: a failed expectation fails the test

mod serve_support;

use mailvault_engine::Engine;
use mailvault_frontends::net::{CONNECTIONS_MAX_ON_SHARDS, Ports, RunningServer, ServerConfig, StartError};
use mailvault_hsm::testing::TestToken;
use serde_json::{Value, json};
use serve_support::{
    EngineStore, ServerProcess, TestServer, init_with_account, mailvault_command, run_bounded, run_python,
    settled_thread_names,
};

const PASSWORD: &str = "a password for both";

/// An account name the server's engine routes to `shard`.
fn account_on(server: &TestServer, shard: usize) -> String {
    (0..1000).map(|index| format!("user{index}")).find(|name| server.engine.shard_of(name) == shard).expect("a name")
}

fn message(account: &str) -> Vec<u8> {
    format!("From: sender@example.org\r\nSubject: for {account}\r\n\r\ndelivered to {account}\r\n").into_bytes()
}

fn hex_bytes(value: &Value) -> Vec<u8> {
    hex::decode(value["ok"].as_str().unwrap_or_else(|| panic!("expected a message, got {value}"))).expect("hex")
}

#[test]
fn sessions_run_on_the_shards_threads_and_serve_accounts_of_every_shard() {
    let mut server = TestServer::start_with(|config| config.frontends_on_shards = true);
    let threads = settled_thread_names("self", std::thread::current().name().expect("a named test thread"));
    assert!(!threads.iter().any(|name| name.starts_with("mailvault-net")), "listener threads: {threads:?}");
    assert_eq!(threads.iter().filter(|name| name.starts_with("mailvault-shard")).count(), 2, "{threads:?}");

    let accounts = [account_on(&server, 0), account_on(&server, 1)];
    for account in &accounts {
        server.add_account(account, PASSWORD);
    }
    for account in &accounts {
        let delivery = server.python(
            "lmtp_transaction",
            &json!({
                "starttls": true,
                "sender": "sender@example.org",
                "recipients": [format!("{account}@example.org")],
                "message": hex::encode(message(account)),
            }),
        );
        assert_eq!(delivery["data"][0][0], 250, "{delivery}");
    }
    for account in &accounts {
        let steps = json!([["user", account], ["pass", PASSWORD], ["retr", 1], ["quit"]]);
        let pop3 = server.python("pop3_session", &json!({"mode": "stls", "steps": steps}));
        // results[0] is the greeting.
        assert_eq!(hex_bytes(&pop3["results"][3]), message(account), "{account} over POP3");
        let imap = server.python("imap_select", &json!({"user": account, "password": PASSWORD, "mailbox": "INBOX"}));
        assert_eq!(imap["uids"], json!([1]), "{account} over IMAP: {imap}");
    }

    // Stopping the server ends its workers on the shards, and every task they started: none is
    // left on a shard's runtime holding the server's services (with a handle on the engine).
    // The engine serves on.
    let services = std::sync::Arc::downgrade(server.server().registry());
    server.stop();
    assert_eq!(services.strong_count(), 0, "a task of the stopped server outlived it");
    for account in &accounts {
        assert_eq!(server.inbox(account), [message(account)]);
    }
}

#[test]
fn more_connections_than_the_shards_can_wait_for_is_refused_at_start() {
    let store = EngineStore::new(1, Engine::open);
    let (engine, token) = (&store.engine, &store.token);
    let mut config = ServerConfig::new(&store.data_dir);
    config.ports = Ports::EPHEMERAL;
    config.frontends_on_shards = true;
    config.connections_max = CONNECTIONS_MAX_ON_SHARDS + 1;
    let Err(error) = RunningServer::start(engine.clone(), &token.hsm, &config) else {
        panic!("started with {} connections allowed", config.connections_max)
    };
    assert!(matches!(error, StartError::TooManyConnections { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "at most {CONNECTIONS_MAX_ON_SHARDS} connections with frontends on the shards' threads ({} asked for)",
            CONNECTIONS_MAX_ON_SHARDS + 1
        )
    );
    config.connections_max = CONNECTIONS_MAX_ON_SHARDS;
    RunningServer::start(engine.clone(), &token.hsm, &config).expect("starts at the limit").shutdown();
}

#[test]
fn serve_frontends_on_shards_runs_no_listener_thread_and_delivers() {
    let token = TestToken::create_with_keys();
    let directory = tempfile::tempdir().expect("temporary directory");
    let data_dir = directory.path().join("data");
    init_with_account(&token, &data_dir, "alice");
    let contradiction = run_bounded(
        mailvault_command(&token, &data_dir).args(["serve", "--frontends-on-shards", "--listener-threads", "2"]),
        b"",
    );
    assert_eq!(contradiction.status.code(), Some(2), "both accepted");
    let stderr = String::from_utf8_lossy(&contradiction.stderr);
    assert!(stderr.contains("--frontends-on-shards") && stderr.contains("--listener-threads"), "{stderr}");

    let mut server = ServerProcess::start_serving(&token, &data_dir, &[], &["--frontends-on-shards"]);
    let threads = settled_thread_names(&server.child.id().to_string(), "mailvault");
    assert!(!threads.iter().any(|name| name.starts_with("mailvault-net")), "listener threads: {threads:?}");
    assert_eq!(threads.iter().filter(|name| name.starts_with("mailvault-shard")).count(), 2, "{threads:?}");
    let delivery = run_python(
        "lmtp_transaction",
        &json!({
            "lmtp_port": server.port("lmtp"),
            "sender": "sender@example.org",
            "recipients": ["alice@example.org"],
            "message": hex::encode(message("alice")),
        }),
    );
    assert_eq!(delivery["data"][0][0], 250, "{delivery}");
    server.terminate();
    let (status, _) = server.wait(std::time::Duration::from_secs(60));
    assert!(status.success(), "{status}");
    let cat = run_bounded(mailvault_command(&token, &data_dir).args(["cat", "alice", "INBOX", "1"]), b"");
    assert_eq!(cat.stdout, message("alice"), "{}", String::from_utf8_lossy(&cat.stderr));
}
