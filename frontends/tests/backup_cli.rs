//! `mailvault backup` through the binary: a backup of a store the server holds (sealed through
//! the admin socket), verify's exit codes, and disaster recovery: the store wiped, restored
//! from the backup, served again, and the message read back over POP3 (Python's poplib), under
//! a new UIDVALIDITY (imaplib) and new POP3 unique ids; a backup run that meets a damaged
//! segment in the store exits 3, and `scrub` finds the damage beside the running server, as
//! the server's own background scrub does.
#![allow(clippy::unwrap_used)]

mod serve_support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use mailvault_hsm::testing::TestToken;
use serde_json::json;
use serve_support::{ServerProcess, mailvault_command, run_bounded};

fn mailvault(token: &TestToken, data_dir: &Path, arguments: &[&str], stdin: &[u8]) -> Output {
    run_bounded(mailvault_command(token, data_dir).args(arguments), stdin)
}

fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

fn pop3_arguments(server: &ServerProcess, directory: &Path, steps: &serde_json::Value) -> serde_json::Value {
    json!({
        "lmtp_port": server.port("lmtp"),
        "pop3_port": server.port("pop3"),
        "pop3s_port": server.port("pop3s"),
        "cafile": directory.join("tls/cert.pem").display().to_string(),
        "mode": "ssl",
        "steps": steps,
    })
}

/// `imap_select`'s arguments: alice's INBOX over IMAPS.
fn imap_inbox(server: &ServerProcess, directory: &Path) -> serde_json::Value {
    json!({
        "imaps_port": server.port("imaps"),
        "cafile": directory.join("tls/cert.pem").display().to_string(),
        "user": "alice",
        "password": "alice password",
        "mailbox": "INBOX",
    })
}

/// alice's POP3 unique-id listing.
fn pop3_uidl(server: &ServerProcess, directory: &Path) -> serde_json::Value {
    let steps = json!([["user", "alice"], ["pass", "alice password"], ["uidl"], ["quit"]]);
    let session = serve_support::run_python("pop3_session", &pop3_arguments(server, directory, &steps));
    let listing = session["results"][3]["ok"].clone();
    assert!(listing.as_array().is_some_and(|lines| lines.len() == 1), "{session}");
    listing
}

/// A sealed segment of the store (not a shard's newest, which is the active one) with frames
/// in more than its header block and 256 bytes (so that byte 4156 is in a frame or the footer),
/// and its shard.
fn sealed_segment_with_frames(data_dir: &Path) -> (u32, std::path::PathBuf) {
    for shard in 0..2 {
        let mut segments: Vec<_> = std::fs::read_dir(data_dir.join(format!("shard-{shard:03}")))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
            .collect();
        segments.sort();
        segments.pop();
        if let Some(sealed) = segments.into_iter().find(|path| std::fs::metadata(path).unwrap().len() > 4096 + 256) {
            return (shard, sealed);
        }
    }
    panic!("no sealed segment with frames in {}", data_dir.display());
}

#[test]
fn a_backup_of_a_serving_store_restores_into_a_store_that_serves_the_same_mail() {
    let token = TestToken::create_with_keys();
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let backup = directory.path().join("backup");
    let backup_arg = backup.display().to_string();
    let mut server = ServerProcess::start(&token, &data_dir);
    succeeded(&mailvault(&token, &data_dir, &["account", "add", "alice"], b""));
    succeeded(&mailvault(&token, &data_dir, &["account", "password", "alice"], b"alice password\n"));
    let message = b"Subject: kept safe\r\n\r\nthis message survives the loss of its store\r\n";
    let delivery = json!({
        "lmtp_port": server.port("lmtp"),
        "sender": "s@example.org",
        "recipients": ["alice@example.org"],
        "message": hex::encode(message),
    });
    let delivered = serve_support::run_python("lmtp_transaction", &delivery);
    assert_eq!(delivered["data"][0][0], 250, "{delivered}");

    let selected_before = serve_support::run_python("imap_select", &imap_inbox(&server, directory.path()));
    let uidl_before = pop3_uidl(&server, directory.path());

    let run = succeeded(&mailvault(&token, &data_dir, &["backup", "run", "--to", &backup_arg], b""));
    assert!(run.starts_with("copied ") && run.contains("manifest manifests/"), "{run}");
    let verify = mailvault(&token, &data_dir, &["backup", "verify", "--from", &backup_arg, "--level", "3"], b"");
    assert_eq!(verify.status.code(), Some(0), "{}", String::from_utf8_lossy(&verify.stdout));
    assert!(String::from_utf8_lossy(&verify.stdout).contains("1 messages compared: Equal"));
    let again = succeeded(&mailvault(&token, &data_dir, &["backup", "run", "--to", &backup_arg], b""));
    assert!(
        again.starts_with("copied 0 segments (0 bytes, 0 frames checked)") && again.contains("manifest unchanged"),
        "{again}"
    );

    // A scrub beside the server finds the store intact.
    let scrub = succeeded(&mailvault(&token, &data_dir, &["scrub"], b""));
    assert!(scrub.ends_with("0 frames without a key, 0 removed by compaction meanwhile: intact\n"), "{scrub}");

    // A segment damaged in the store (the server's) before its first copy to a new target:
    // the run names it, exits 3 and writes no manifest; a scrub names it too.
    let (shard, sealed) = sealed_segment_with_frames(&data_dir);
    let mut bytes = std::fs::read(&sealed).unwrap();
    bytes[4096 + 60] ^= 1;
    std::fs::write(&sealed, bytes).unwrap();
    let new_target = directory.path().join("new-backup");
    let refused = mailvault(&token, &data_dir, &["backup", "run", "--to", &new_target.display().to_string()], b"");
    let (stdout, stderr) = (String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
    assert_eq!(refused.status.code(), Some(3), "{stdout}{stderr}");
    let expected = format!("damaged: shard {shard} segment {}: segment ", sealed.display());
    assert!(stdout.lines().next().is_some_and(|line| line.starts_with(&expected)), "{stdout}");
    assert!(stderr.contains("no manifest was written") && stderr.contains("--shard N"), "{stderr}");
    let manifests = new_target.join("manifests");
    assert!(!manifests.exists() || std::fs::read_dir(&manifests).unwrap().next().is_none(), "a manifest was written");
    let scrub = mailvault(&token, &data_dir, &["scrub"], b"");
    let (stdout, stderr) = (String::from_utf8_lossy(&scrub.stdout), String::from_utf8_lossy(&scrub.stderr));
    assert_eq!(scrub.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stdout.lines().next().is_some_and(|line| line.starts_with(&expected)), "{stdout}");
    assert!(stdout.trim_end().ends_with(": damaged") && stderr.contains("--shard N"), "{stdout}{stderr}");

    server.terminate();
    let (status, _) = server.wait(Duration::from_secs(60));
    assert!(status.success());
    drop(server);

    the_servers_own_scrub_finds_the_damage(&token, &data_dir, shard, &sealed);
    std::fs::remove_dir_all(&data_dir).unwrap();

    let restore = mailvault(
        &token,
        &data_dir,
        &["backup", "restore", "--from", &backup_arg, "--into", &data_dir.display().to_string()],
        b"",
    );
    let restored = succeeded(&restore);
    assert!(restored.contains("1 accounts, 1 messages; equal to the backup"), "{restored}");
    assert!(restored.contains("1 mailboxes have a new UIDVALIDITY"), "{restored}");
    let verify = mailvault(&token, &data_dir, &["backup", "verify", "--from", &backup_arg, "--level", "3"], b"");
    assert_eq!(verify.status.code(), Some(0), "{}", String::from_utf8_lossy(&verify.stdout));

    let server = ServerProcess::start(&token, &data_dir);
    let steps = json!([["user", "alice"], ["pass", "alice password"], ["retr", 1], ["quit"]]);
    let session = serve_support::run_python("pop3_session", &pop3_arguments(&server, directory.path(), &steps));
    assert_eq!(session["results"][3]["ok"], hex::encode(message), "{session}");
    // The same uid under a new UIDVALIDITY: IMAP and POP3 clients know to fetch anew.
    let selected_after = serve_support::run_python("imap_select", &imap_inbox(&server, directory.path()));
    assert_eq!(selected_after["uids"], json!([1]), "{selected_after}");
    assert_eq!(selected_before["uids"], json!([1]), "{selected_before}");
    let (before, after) =
        (selected_before["uidvalidity"].as_u64().unwrap(), selected_after["uidvalidity"].as_u64().unwrap());
    assert!(after > before, "UIDVALIDITY {after} after the restore, {before} before");
    let uidl_after = pop3_uidl(&server, directory.path());
    assert_ne!(uidl_after, uidl_before, "POP3's unique ids change with it");
    drop(server);

    // One altered byte in the backup: verify exits 3 and names the file.
    let shard = std::fs::read_dir(backup.join("segments")).unwrap().next().unwrap().unwrap().path();
    let segment = std::fs::read_dir(shard).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[4100] ^= 1;
    std::fs::write(&segment, bytes).unwrap();
    let damaged = mailvault(&token, &data_dir, &["backup", "verify", "--from", &backup_arg, "--level", "1"], b"");
    assert_eq!(damaged.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&damaged.stdout);
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(
        stdout.lines().next().is_some_and(|line| line.starts_with("damaged: segment ") && line.contains(name)),
        "{stdout}"
    );
}

/// The server's own background scrub (on by default) finds a damaged segment too: its pass at
/// start (the record of the last one removed, so that one is due) keeps the finding in the
/// shard's scrub-state, and `stats` shows it, beside the server and once it is stopped.
fn the_servers_own_scrub_finds_the_damage(token: &TestToken, data_dir: &Path, shard: u32, sealed: &Path) {
    let scrub_state = data_dir.join(format!("shard-{shard:03}/scrub-state"));
    std::fs::remove_file(&scrub_state).unwrap();
    let mut server = ServerProcess::start(token, data_dir);
    let segment_id: u64 = sealed.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&scrub_state).is_ok_and(|state| state.contains(&format!("\ndamaged {segment_id} ")))
    {
        assert!(std::time::Instant::now() < deadline, "the server's scrub found nothing in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let finding = format!("shard {shard}: scrub found segment {segment_id} damaged: ");
    let beside_the_server = succeeded(&mailvault(token, data_dir, &["stats"], b""));
    assert!(beside_the_server.lines().any(|line| line.starts_with(&finding)), "{beside_the_server}");
    server.terminate();
    assert!(server.wait(Duration::from_secs(60)).0.success());
    drop(server);
    let stopped = succeeded(&mailvault(token, data_dir, &["stats"], b""));
    assert!(stopped.lines().any(|line| line.starts_with(&finding)), "kept in scrub-state: {stopped}");
}
