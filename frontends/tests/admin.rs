//! The operator's commands through the built binary: on a store no server has open (the CLI
//! opens the engine itself) and on one a running server holds (the CLI goes through the admin
//! socket, and `account logout` ends that server's live sessions).
#![allow(clippy::expect_used)] // helpers outside #[test] functions: a failed expectation fails the test

mod serve_support;

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use mailvault_engine::{CompactionStatus, Engine, EngineConfig, block_on};
use mailvault_frontends::admin::{self, AdminCommand};
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

/// A store a `mailvault serve` process holds, on a fresh token.
struct ServedStore {
    token: TestToken,
    directory: tempfile::TempDir,
    data_dir: std::path::PathBuf,
    server: ServerProcess,
}

fn served_store() -> ServedStore {
    let token = TestToken::create_with_keys();
    let directory = tempfile::tempdir().expect("temporary directory");
    let data_dir = directory.path().join("data");
    let server = ServerProcess::start(&token, &data_dir);
    ServedStore { token, directory, data_dir, server }
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
    let ServedStore { token, directory, data_dir, server } = served_store();
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
    let nowhere = directory.path().join("no-backup").display().to_string();
    let restore = mailvault(&token, &data_dir, &["backup", "restore", "--from", &nowhere, "--shard", "0"], b"");
    assert!(!restore.status.success());
    let stderr = String::from_utf8_lossy(&restore.stderr);
    assert!(stderr.contains("stop it first"), "{stderr}");
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

/// The rows of a table the CLI printed (its header line skipped).
fn rows(table: &str) -> Vec<Vec<String>> {
    table.lines().skip(1).map(|line| line.split_whitespace().map(str::to_owned).collect()).collect()
}

#[test]
fn mail_and_compaction_commands_reach_a_running_server_and_work_without_one() {
    let ServedStore { token, directory, data_dir, mut server } = served_store();
    let run = |arguments: &[&str]| succeeded(&mailvault(&token, &data_dir, arguments, b"")).trim().to_owned();
    run(&["account", "add", "alice"]);
    succeeded(&mailvault(&token, &data_dir, &["account", "password", "alice"], b"alice password\n"));
    for number in 1..=3 {
        let message = format!("Subject: message {number}\r\n\r\nbody {number}\r\n");
        let delivered = serve_support::run_python(
            "lmtp_transaction",
            &json!({"lmtp_port": server.port("lmtp"), "sender": "s@example.org",
                    "recipients": ["alice@example.org"], "message": hex::encode(message)}),
        );
        assert_eq!(delivered["data"][0][0], 250, "{delivered}");
    }

    assert_eq!(run(&["mailbox", "create", "alice", "Work"]), "mailbox Work of alice created");
    assert_eq!(run(&["mailbox", "rename", "alice", "Work", "Archive"]), "mailbox Work of alice renamed to Archive");
    let mailboxes = rows(&run(&["mailbox", "list", "alice"]));
    let names: Vec<(&str, &str)> = mailboxes.iter().map(|row| (row[4].as_str(), row[2].as_str())).collect();
    assert_eq!(names, [("INBOX", "3"), ("Archive", "0")], "{mailboxes:?}");
    let refused = mailvault(&token, &data_dir, &["mailbox", "rename", "alice", "INBOX", "Elsewhere"], b"");
    assert!(!refused.status.success(), "INBOX cannot be renamed, through the server either");
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "", "a refused command prints nothing on stdout");
    assert_eq!(rows(&run(&["mailbox", "messages", "alice", "INBOX"])).len(), 3);

    // `append` and `cat` through the socket: any bytes, and more than a request line may hold.
    let mut message = b"Subject: binary\r\n\r\n".to_vec();
    message.extend((0..3 * 1024 * 1024).map(|index: usize| (index * 7 % 251) as u8));
    let appended =
        succeeded(&mailvault(&token, &data_dir, &["append", "alice", "-", "--mailbox", "Archive"], &message));
    assert_eq!(appended.trim(), "1");
    let cat = mailvault(&token, &data_dir, &["cat", "alice", "Archive", "1"], b"");
    assert!(cat.status.success(), "{}", String::from_utf8_lossy(&cat.stderr));
    assert!(cat.stdout == message, "cat gave {} other bytes", cat.stdout.len());
    let missing = mailvault(&token, &data_dir, &["cat", "alice", "Archive", "2"], b"");
    assert!(!missing.status.success() && missing.stdout.is_empty(), "no such message");

    // Two messages deleted over POP3, one of them restored by the operator.
    let pop3 = serve_support::run_python(
        "pop3_session",
        &json!({"pop3s_port": server.port("pop3s"), "cafile": directory.path().join("tls/cert.pem").display().to_string(),
                "steps": [["user", "alice"], ["pass", "alice password"], ["dele", 1], ["dele", 2], ["quit"]]}),
    );
    assert!(pop3["results"][5]["ok"].as_str().is_some_and(|reply| reply.starts_with("+OK")), "{pop3}");
    let deleted = rows(&run(&["account", "deleted", "alice"]));
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    let restored = run(&["account", "restore", "alice", &deleted[0][0], &deleted[0][1]]);
    assert_eq!(restored, "restored into INBOX as uid 4");
    assert_eq!(rows(&run(&["account", "deleted", "alice"])).len(), 1);

    // The prune rewrites the segment that held the pruned message, beside the live server.
    let refused = mailvault(&token, &data_dir, &["account", "prune", "alice"], b"");
    assert!(!refused.status.success(), "prune without --now");
    let pruned = run(&["account", "prune", "alice", "--now"]);
    assert!(pruned.starts_with("pruned 1 deleted messages of alice; rewrote "), "{pruned}");
    let rewritten: u64 = pruned
        .split("rewrote ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .expect("count")
        .parse()
        .expect("number");
    assert!(rewritten >= 1, "{pruned}");
    assert!(rows(&run(&["account", "deleted", "alice"])).is_empty());
    assert!(run(&["compact"]).starts_with("rewrote "));
    let status = admin::send(&data_dir.join("admin.sock"), &AdminCommand::CompactionStatus).expect("status");
    assert!(status.ok, "{}", status.output);
    let shards: Vec<CompactionStatus> = serde_json::from_str(&status.output).expect("JSON status");
    assert_eq!(shards.iter().map(|shard| shard.shard_id).collect::<Vec<_>>(), [0, 1]);

    // Two messages left, readable over IMAP after all that.
    let mut curl = Command::new("curl");
    curl.args(["--silent", "--show-error", "--max-time", "30", "--cacert"]).arg(directory.path().join("tls/cert.pem"));
    curl.args(["--user", "alice:alice password"])
        .arg(format!("imaps://127.0.0.1:{}/INBOX;UID=4", server.port("imaps")));
    let fetched = run_bounded(&mut curl, b"");
    assert_eq!(String::from_utf8_lossy(&fetched.stdout), "Subject: message 1\r\n\r\nbody 1\r\n");

    // The same commands on the stopped store open it themselves.
    server.terminate();
    assert!(server.wait(Duration::from_secs(60)).0.success());
    let messages = rows(&run(&["mailbox", "messages", "alice", "INBOX"]));
    assert_eq!(messages.iter().map(|row| row[0].as_str()).collect::<Vec<_>>(), ["3", "4"]);
    assert_eq!(run(&["mailbox", "delete", "alice", "Archive"]).lines().count(), 1);
    assert!(run(&["compact"]).starts_with("rewrote "));
}

#[test]
fn the_admin_socket_serves_commands_at_once_and_refuses_past_its_limit() {
    let ServedStore { data_dir, .. } = &served_store();
    let socket = data_dir.join("admin.sock");
    // Connections that never send their command: each holds one of the server's slots until
    // its 10-second timeout.
    let connected = std::time::Instant::now();
    let mut idle: Vec<UnixStream> =
        (0..16).map(|_| UnixStream::connect(&socket).expect("connect to the admin socket")).collect();
    let busy = admin::send(&socket, &AdminCommand::AccountList).expect("reply");
    assert!(!busy.ok && busy.output.contains("16 admin commands are running"), "{}", busy.output);

    // One slot freed: the next command is served while the other idle connections still wait.
    drop(idle.pop());
    let mut answered = None;
    for _ in 0..50 {
        let reply = admin::send(&socket, &AdminCommand::AccountList).expect("reply");
        if reply.ok {
            answered = Some(reply);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answered.is_some_and(|reply| reply.output.starts_with("account")), "no slot came free");
    if connected.elapsed() > Duration::from_secs(8) {
        return; // a machine this slow: the idle connections' 10-second timeout may have ended them
    }
    for stream in &mut idle {
        stream.set_nonblocking(true).expect("nonblocking");
        let mut byte = [0_u8; 1];
        let waiting = stream.read(&mut byte).is_err_and(|error| error.kind() == std::io::ErrorKind::WouldBlock);
        assert!(waiting, "an idle connection was answered before the command after it");
    }
}
