//! The operator's side of quarantine, through the built binary: a store with a damaged shard
//! fails to open with an error that names the damage and the flag that opens the rest; with
//! `--quarantine-corrupt-shards` the healthy shard's accounts are served, the damaged one's are
//! refused naming it, and stderr warns which shard is set aside. A server started so takes mail
//! for the healthy shard and defers the damaged one's (451: the sender's MTA keeps it), and
//! tells POP3 and IMAP logins to the damaged shard's accounts to come back later. A backup
//! taken before the damage repairs the shard (`backup restore --shard`).
#![allow(clippy::expect_used)] // helpers outside #[test] functions: a failed expectation fails the test

mod serve_support;

use std::path::{Path, PathBuf};
use std::process::Output;

use mailvault_engine::{Engine, EngineConfig, EngineError, Flags, INBOX, block_on};
use mailvault_hsm::testing::TestToken;
use serde_json::json;
use serve_support::{ServerProcess, mailvault_command, run_bounded, run_python, settled_thread_names};

const DAMAGED_SHARD: usize = 1;

fn mailvault(token: &TestToken, data_dir: &Path, arguments: &[&str]) -> Output {
    run_bounded(mailvault_command(token, data_dir).args(arguments), b"")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Delivers `message` from a@example.org to `recipients` through the server's LMTP listener
/// (Python's `smtplib.LMTP`); answers the client's record of the replies.
fn lmtp_deliver(server: &ServerProcess, recipients: &[&str], message: &[u8]) -> serde_json::Value {
    run_python(
        "lmtp_transaction",
        &json!({
            "lmtp_port": server.port("lmtp"),
            "sender": "a@example.org",
            "recipients": recipients,
            "message": hex::encode(message),
        }),
    )
}

fn small_segments(data_dir: &Path) -> EngineConfig {
    let mut config = EngineConfig::new(data_dir);
    config.segment_bytes_max = 16 * 1024;
    config
}

/// The shard's first segment file (sealed, with small segments).
fn first_segment(data_dir: &Path, shard: usize) -> PathBuf {
    let directory = data_dir.join(format!("shard-{shard:03}"));
    let mut segments: Vec<PathBuf> = std::fs::read_dir(directory)
        .expect("shard directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 2, "shard {shard} sealed a segment");
    segments.remove(0)
}

/// A two-shard store of six accounts whose shard 1 is damaged: the accounts on the damaged
/// shard and those on the other, the damaged segment and its bytes.
struct DamagedStore {
    token: TestToken,
    _directory: tempfile::TempDir,
    data_dir: PathBuf,
    refused: Vec<String>,
    served: Vec<String>,
    segment: PathBuf,
    bytes: Vec<u8>,
    /// A backup taken before the damage.
    backup: PathBuf,
}

fn damaged_store() -> DamagedStore {
    let token = TestToken::create_with_keys();
    let directory = tempfile::tempdir().expect("temporary directory");
    let data_dir = directory.path().join("data");
    assert!(mailvault(&token, &data_dir, &["init", "--shards", "2"]).status.success());
    let accounts: Vec<String> = (0..6).map(|index| format!("user{index}@example.org")).collect();
    let engine = Engine::open(&small_segments(&data_dir), &token.hsm).expect("open");
    block_on(async {
        for account in &accounts {
            engine.create_account(account).await.expect("create account");
            for message in 0..6 {
                let body = format!("Subject: {message}\r\n\r\n{}", "x".repeat(3000)).into_bytes();
                engine.append(account, INBOX, body, Flags::default(), None).await.expect("append");
            }
        }
    });
    drop(engine);
    for account in &accounts {
        let output = run_bounded(mailvault_command(&token, &data_dir).args(["account", "password", account]), b"pw\n");
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let backup = directory.path().join("backup");
    let output = mailvault(&token, &data_dir, &["backup", "run", "--to", &backup.display().to_string()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // No checkpoint: the open replays the whole log and meets the damage. A flipped byte in a
    // frame near the start of a sealed segment, with later frames after it, is damage.
    let _ = std::fs::remove_file(data_dir.join(format!("shard-{DAMAGED_SHARD:03}")).join("checkpoint"));
    let segment = first_segment(&data_dir, DAMAGED_SHARD);
    let mut bytes = std::fs::read(&segment).expect("read segment");
    bytes[4096 + 40 + 200] ^= 0x01;
    std::fs::write(&segment, &bytes).expect("write segment");

    // Which accounts live on the damaged shard, as the engine routes them.
    let mut config = small_segments(&data_dir);
    config.quarantine_corrupt_shards = true;
    let engine = Engine::open(&config, &token.hsm).expect("open with quarantine");
    let on_damaged_shard = |account: &String| {
        matches!(block_on(engine.list_mailboxes(account)), Err(EngineError::Quarantined { shard_id: 1, .. }))
    };
    let (refused, served): (Vec<String>, Vec<String>) =
        accounts.into_iter().partition(|account| on_damaged_shard(account));
    drop(engine);
    assert!(!refused.is_empty() && !served.is_empty(), "accounts on both shards");
    DamagedStore { token, _directory: directory, data_dir, refused, served, segment, bytes, backup }
}

#[test]
fn a_damaged_shard_is_named_and_the_flag_serves_the_others() {
    let DamagedStore { token, data_dir, refused, served, segment, bytes, .. } = &damaged_store();
    let data_dir = data_dir.as_path();
    let output = mailvault(token, data_dir, &["mailbox", "list", &served[0]]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "opened over a damaged shard: {}", text(&output.stdout));
    assert!(stderr.contains(&format!("shard {DAMAGED_SHARD}")) && stderr.contains("segment 1 is corrupt at offset"));
    assert!(stderr.contains("rerun with --quarantine-corrupt-shards"), "{stderr}");

    let output = mailvault(token, data_dir, &["--quarantine-corrupt-shards", "mailbox", "list", &served[0]]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("INBOX"), "{stdout}");
    assert!(stderr.contains(&format!("warning: shard {DAMAGED_SHARD} is quarantined")), "{stderr}");

    let output = mailvault(token, data_dir, &["mailbox", "list", &refused[0], "--quarantine-corrupt-shards"]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(text(&output.stdout), "", "a refused listing prints no table header");
    assert!(
        stderr.contains(&format!("shard {DAMAGED_SHARD} is quarantined")) && stderr.contains("segment 1"),
        "{stderr}"
    );
    assert_eq!(&std::fs::read(segment).expect("read segment"), bytes, "the damaged segment was left as it was");
}

#[test]
fn a_damaged_shard_is_repaired_from_a_backup_and_the_store_opens_again() {
    let DamagedStore { token, data_dir, refused, backup, .. } = &damaged_store();
    let data_dir = data_dir.as_path();
    let backup = backup.display().to_string();
    let both = ["backup", "restore", "--from", &backup, "--shard", "1", "--into", "elsewhere"];
    let output = mailvault(token, data_dir, &both);
    assert_eq!(output.status.code(), Some(2), "--into and --shard together is a usage error");
    assert!(text(&output.stderr).contains("cannot be used with"), "{}", text(&output.stderr));

    let output = mailvault(token, data_dir, &["backup", "restore", "--from", &backup, "--shard", "1"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains("the shard's old files were moved to") && stdout.contains("shard-001.replaced-"),
        "{stdout}"
    );
    assert!(stdout.contains("restored shard: ") && stdout.contains("; equal to the backup"), "{stdout}");

    let output = mailvault(token, data_dir, &["mailbox", "list", &refused[0]]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "the store opens without the flag: {}", text(&output.stderr));
    assert!(stdout.contains("INBOX"), "{stdout}");
    let output = mailvault(token, data_dir, &["cat", &refused[0], INBOX, "6"]);
    assert!(output.status.success() && text(&output.stdout).starts_with("Subject: 5"), "{}", text(&output.stderr));
}

#[test]
fn a_server_with_a_quarantined_shard_delivers_to_the_others_and_defers_the_rest() {
    let store = damaged_store();
    let mut server = ServerProcess::start_with(&store.token, &store.data_dir, &["--quarantine-corrupt-shards"]);
    let message = b"From: a@example.org\r\nSubject: while quarantined\r\n\r\nhello\r\n".to_vec();
    let result = lmtp_deliver(&server, &[&store.served[0], &store.refused[0]], &message);
    let codes: Vec<i64> = ["rcpt", "data"]
        .iter()
        .flat_map(|step| result[step].as_array().expect("replies").iter().map(|reply| reply[0].as_i64().expect("code")))
        .collect();
    // RCPT: accepted, then deferred (the sender's MTA keeps that copy); DATA: one reply, for
    // the accepted recipient.
    assert_eq!(codes, [250, 451, 250], "{result}");
    assert!(result["rcpt"][1][1].as_str().expect("text").starts_with("4.3.0"), "{result}");

    let cafile = store.data_dir.parent().expect("parent").join("tls/cert.pem");
    let pop3 = |account: &str| {
        let steps = json!([["user", account], ["pass", "pw"], ["stat"], ["quit"]]);
        let arguments = json!({"pop3s_port": server.port("pop3s"), "cafile": cafile, "mode": "ssl", "steps": steps});
        run_python("pop3_session", &arguments)["results"].clone()
    };
    let healthy_login = pop3(&store.served[0]);
    assert_eq!(healthy_login[3]["ok"][0], 7, "the six messages and the one just delivered: {healthy_login}");
    let quarantined_login = pop3(&store.refused[0]);
    let error = quarantined_login[2]["error"].as_str().expect("PASS refused");
    assert!(error.starts_with("-ERR [SYS/TEMP]"), "a temporary failure, not a wrong password: {quarantined_login}");
    let imap = |account: &str| {
        let arguments =
            json!({"imaps_port": server.port("imaps"), "cafile": cafile, "user": account, "password": "pw"});
        run_python("imap_login", &arguments)
    };
    let healthy_login = imap(&store.served[0]);
    assert!(healthy_login["ok"].is_string(), "{healthy_login}");
    let quarantined_login = imap(&store.refused[0]);
    let refusal = quarantined_login["no"].as_str().expect("LOGIN refused");
    assert!(refusal.starts_with("[UNAVAILABLE]"), "a temporary failure, not a wrong password: {quarantined_login}");
    server.terminate();
    let (status, _) = server.wait(std::time::Duration::from_secs(30));
    assert!(status.success(), "{status}");

    let mut config = small_segments(&store.data_dir);
    config.quarantine_corrupt_shards = true;
    let engine = Engine::open(&config, &store.token.hsm).expect("open with quarantine");
    let (info, messages) = block_on(engine.list_messages(&store.served[0], INBOX)).expect("list");
    assert_eq!(messages.len(), 7, "{info:?}");
    let last = block_on(engine.fetch(&store.served[0], INBOX, messages[6].uid)).expect("fetch");
    assert_eq!(last.body, message);
    drop(engine);
    assert_eq!(
        std::fs::read(&store.segment).expect("read segment"),
        store.bytes,
        "the damaged segment was left as it was"
    );
}

/// With frontends on the shards, the quarantined shard runs no runtime to host a listener
/// worker: its worker gets a thread of its own, and the healthy shard's accounts get their mail.
#[test]
fn frontends_on_shards_give_a_quarantined_shards_worker_its_own_thread() {
    let store = damaged_store();
    let mut server = ServerProcess::start_serving(
        &store.token,
        &store.data_dir,
        &["--quarantine-corrupt-shards"],
        &["--frontends-on-shards"],
    );
    let threads = settled_thread_names(&server.child.id().to_string(), "mailvault");
    let listener_threads: Vec<&String> = threads.iter().filter(|name| name.starts_with("mailvault-net")).collect();
    assert_eq!(listener_threads, [&format!("mailvault-net-{DAMAGED_SHARD}")], "{threads:?}");
    let message = b"From: a@example.org\r\nSubject: on the shards\r\n\r\nhello\r\n";
    let result = lmtp_deliver(&server, &[&store.served[0]], message);
    assert_eq!(result["data"][0][0], 250, "{result}");
    server.terminate();
    let (status, _) = server.wait(std::time::Duration::from_secs(30));
    assert!(status.success(), "{status}");
}
