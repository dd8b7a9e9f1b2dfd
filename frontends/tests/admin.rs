//! The operator's commands through the built binary: on a store no server has open (the CLI
//! opens the engine itself) and on one a running server holds (the CLI goes through the admin
//! socket, and `account logout` ends that server's live sessions).
#![allow(clippy::expect_used)] // helpers outside #[test] functions: a failed expectation fails the test

mod serve_support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use mailvault_engine::{Engine, EngineConfig, block_on};
use mailvault_hsm::testing::TestToken;
use serde_json::json;
use serve_support::{ServerProcess, WaitingClient, mailvault_command, run_bounded};

fn mailvault(token: &TestToken, data_dir: &Path, arguments: &[&str], stdin: &[u8]) -> Output {
    run_bounded(mailvault_command(token, data_dir).args(arguments), stdin)
}

fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

/// The generated password at the end of `app-password add`'s output.
fn generated_password(output: &str) -> String {
    output.trim().rsplit(": ").next().expect("password").to_owned()
}

#[test]
fn account_commands_work_without_a_server() {
    let token = TestToken::create_with_keys();
    let directory = tempfile::tempdir().expect("temporary directory");
    let data_dir = directory.path().join("data");
    succeeded(&mailvault(&token, &data_dir, &["init", "--shards", "2"], b""));
    assert_eq!(
        succeeded(&mailvault(&token, &data_dir, &["account", "add", "alice"], b"")).trim(),
        "account alice created"
    );
    // The password from standard input...
    let output = mailvault(&token, &data_dir, &["account", "password", "alice"], b"first password\n");
    assert_eq!(succeeded(&output).trim(), "password of alice set");
    // ...or from the environment.
    let output = run_bounded(
        mailvault_command(&token, &data_dir)
            .env("MAILVAULT_NEW_PASSWORD", "second password")
            .args(["account", "password", "alice"]),
        b"",
    );
    succeeded(&output);
    let output = succeeded(&mailvault(&token, &data_dir, &["account", "app-password", "add", "alice", "phone"], b""));
    let app_password = generated_password(&output);
    assert_eq!(app_password.len(), 19, "{output}");
    let duplicate = mailvault(&token, &data_dir, &["account", "app-password", "add", "alice", "phone"], b"");
    assert!(!duplicate.status.success(), "labels are unique per account");
    let output = mailvault(&token, &data_dir, &["account", "password", "nobody"], b"a password\n");
    assert!(!output.status.success());
    let empty = mailvault(&token, &data_dir, &["account", "password", "alice"], b"\n");
    assert!(!empty.status.success(), "an empty password is refused");
    let output = succeeded(&mailvault(&token, &data_dir, &["account", "logout", "alice"], b""));
    assert_eq!(output.trim(), "alice logged out: 1 app passwords revoked, 0 live sessions ended");
    let log = succeeded(&mailvault(&token, &data_dir, &["account", "access-log", "alice"], b""));
    assert_eq!(log.lines().count(), 1, "only the header: no login yet\n{log}");

    let engine = Engine::open(&EngineConfig::new(&data_dir), &token.hsm).expect("open");
    let credentials = block_on(engine.credentials("alice")).expect("credentials");
    let hash = credentials.password_hash.expect("password set");
    assert!(hash.starts_with("$argon2id$") && hash.contains("keyid="), "an HSM-peppered argon2id hash: {hash}");
    assert!(credentials.app_passwords.is_empty(), "revoked by logout");
    let session = token.hsm.session().expect("session");
    assert!(mailvault_hsm::password::verify_password_peppered(&session, "second password", &hash).expect("verify"));
}

#[test]
fn account_commands_reach_a_running_server_through_its_admin_socket() {
    let token = TestToken::create_with_keys();
    let directory = tempfile::tempdir().expect("temporary directory");
    let data_dir = directory.path().join("data");
    let server = ServerProcess::start(&token, &data_dir);
    let socket = data_dir.join("admin.sock");
    let metadata = std::fs::metadata(&socket).expect("admin socket");
    assert!(metadata.file_type().is_socket());
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);

    succeeded(&mailvault(&token, &data_dir, &["account", "add", "alice"], b""));
    succeeded(&mailvault(&token, &data_dir, &["account", "password", "alice"], b"alice password\n"));
    let app_password = generated_password(&succeeded(&mailvault(
        &token,
        &data_dir,
        &["account", "app-password", "add", "alice", "tablet"],
        b"",
    )));
    // A store the server holds cannot be opened by the CLI for commands the server does not
    // run for it; `stats` it runs (its scrub pass at start is over: the store was empty).
    let compact = mailvault(&token, &data_dir, &["compact"], b"");
    assert!(!compact.status.success());
    let stats = succeeded(&mailvault(&token, &data_dir, &["stats"], b""));
    let accounts: u64 = stats
        .lines()
        .skip(1)
        .take_while(|line| !line.is_empty())
        .map(|line| line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(accounts, 1, "{stats}");
    assert_eq!(stats.matches(": last scrub pass ").count(), 2, "one line per shard: {stats}");

    // Deliver over LMTP, read back over POP3 (app password) and IMAP (curl, account password).
    let message = b"Subject: through the binary\r\n\r\nhello\r\n";
    let arguments = |extra: serde_json::Value| {
        let mut arguments = json!({
            "lmtp_port": server.port("lmtp"),
            "pop3_port": server.port("pop3"),
            "pop3s_port": server.port("pop3s"),
            "cafile": directory.path().join("tls/cert.pem").display().to_string(),
        });
        for (key, value) in extra.as_object().expect("object") {
            arguments[key] = value.clone();
        }
        arguments
    };
    let delivered = serve_support::run_python(
        "lmtp_transaction",
        &arguments(
            json!({"sender": "s@example.org", "recipients": ["alice@example.org"], "message": hex::encode(message)}),
        ),
    );
    assert_eq!(delivered["data"][0][0], 250, "{delivered}");
    let mut curl = Command::new("curl");
    curl.args(["--silent", "--show-error", "--max-time", "30", "--cacert"]).arg(directory.path().join("tls/cert.pem"));
    curl.args(["--user", "alice:alice password"])
        .arg(format!("imaps://127.0.0.1:{}/INBOX;UID=1", server.port("imaps")));
    let fetched = run_bounded(&mut curl, b"");
    assert!(fetched.status.success(), "{}", String::from_utf8_lossy(&fetched.stderr));
    assert_eq!(fetched.stdout, message);

    // A live POP3 session, ended by `account logout` from the CLI.
    let client = WaitingClient::start(
        "pop3_session",
        &arguments(json!({"mode": "ssl", "steps": [["user", "alice"], ["pass", app_password], ["wait"], ["stat"]]})),
    );
    let output = succeeded(&mailvault(&token, &data_dir, &["account", "logout", "alice"], b""));
    assert_eq!(output.trim(), "alice logged out: 1 app passwords revoked, 1 live sessions ended");
    let result = client.go();
    assert!(result["results"][4]["error"].as_str().is_some_and(|text| text.contains("remote logout")), "{result}");

    let log = succeeded(&mailvault(&token, &data_dir, &["account", "access-log", "alice"], b""));
    let rows: Vec<&str> = log.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{log}");
    assert!(
        rows[0].contains("success") && rows[0].contains("pop3") && rows[0].contains("app-password:tablet"),
        "{log}"
    );
    assert!(rows[1].contains("success") && rows[1].contains("imap") && rows[1].contains("127.0.0.1"), "{log}");
    drop(server);
}
