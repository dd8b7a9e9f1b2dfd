//! The load generator against the real server: an in-process mailvault on loopback ephemeral
//! ports (a SoftHSM test token, as `frontends/tests/serve_support` does), a small bounded run
//! of the built binary (deliver over LMTP+STARTTLS, read back over POP3S and IMAP+STARTTLS),
//! zero errors and every message byte-identical; then `retrieve` alone with the same tag.
#![allow(clippy::expect_used, clippy::missing_panics_doc)] // helpers outside #[test] functions: a failed expectation fails the test

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mailvault_engine::{Engine, EngineConfig, block_on, init_store};
use mailvault_frontends::admin::{self, AdminCommand};
use mailvault_frontends::net::{ListenerKind, Ports, RunningServer, ServerConfig};
use mailvault_hsm::testing::TestToken;

const USERS: u32 = 3;
const MESSAGES: u64 = 40;
/// The whole binary run must end within this.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

struct TestServer {
    // Dropped in order: the server, then the engine, then the token.
    server: Option<RunningServer>,
    engine: Engine,
    _directory: tempfile::TempDir,
    token: TestToken,
}

impl TestServer {
    fn start() -> Self {
        let token = TestToken::create_with_keys();
        let directory = tempfile::tempdir().expect("temporary directory");
        let data_dir = directory.path().join("data");
        init_store(&data_dir, 2).expect("init store");
        let engine = Engine::open(&EngineConfig::new(&data_dir), &token.hsm).expect("open engine");
        let mut config = ServerConfig::new(&data_dir);
        config.workers = 2;
        config.verifier_threads = 1;
        config.ports = Ports::EPHEMERAL;
        let server = RunningServer::start(engine.clone(), &token.hsm, &config).expect("start server");
        Self { server: Some(server), engine, _directory: directory, token }
    }

    fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server running")
    }

    fn address(&self, kind: ListenerKind) -> String {
        self.running().address(kind).expect("listener").to_string()
    }

    fn add_account(&self, account: &str, password: &str) {
        let registry = Some(self.running().registry().clone());
        for command in [
            AdminCommand::AccountAdd { account: account.to_owned() },
            AdminCommand::AccountPassword { account: account.to_owned(), password: password.to_owned() },
        ] {
            block_on(admin::execute(command, &self.engine, &self.token.hsm, registry.as_deref()))
                .expect("admin command");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }
}

/// Runs the load generator with `arguments`, bounded in time.
fn loadtest(arguments: &[String]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailvault-loadtest"))
        .args(arguments)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailvault-loadtest");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mailvault-loadtest did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

fn arguments(server: &TestServer, command: &str, imap: &str, json: &Path, extra: &[&str]) -> Vec<String> {
    let mut arguments: Vec<String> = [
        command,
        "--messages",
        &MESSAGES.to_string(),
        "--connections",
        "4",
        "--users",
        &USERS.to_string(),
        "--size-max",
        "204800",
        "--seed",
        "7",
        "--lmtp",
        &format!("starttls://{}", server.address(ListenerKind::Lmtp)),
        "--pop3",
        &format!("tls://{}", server.address(ListenerKind::Pop3Tls)),
        "--imap",
        imap,
        "--password-pattern",
        "secret {i} \"quoted\"",
        "--server-pid",
        &std::process::id().to_string(),
        "--label",
        "mailvault",
        "--quiet",
        "--json",
        &json.display().to_string(),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    arguments.extend(extra.iter().map(ToString::to_string));
    arguments
}

fn read_report(output: &Output, json: &Path) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "loadtest failed ({}):\n{stdout}\n{stderr}", output.status);
    print!("{stdout}");
    serde_json::from_str(&std::fs::read_to_string(json).expect("json report")).expect("valid json")
}

#[test]
fn delivers_and_reads_back_every_message_byte_identical() {
    let started = Instant::now();
    let server = TestServer::start();
    for number in 1..=USERS {
        server.add_account(&format!("user{number:04}@example.org"), &format!("secret {number:04} \"quoted\""));
    }
    let directory = tempfile::tempdir().expect("temporary directory");
    let json = directory.path().join("report.json");

    let imap = format!("starttls://{}", server.address(ListenerKind::Imap));
    let certificate = server.running().certificate_path().display().to_string();
    let output = loadtest(&arguments(&server, "run", &imap, &json, &["--tag", "smoke1", "--ca-file", &certificate]));
    let report = read_report(&output, &json);
    assert_eq!(report["errors_total"], 0);
    let phases = report["phases"].as_array().expect("phases");
    let names: Vec<&str> = phases.iter().map(|phase| phase["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["deliver/lmtp", "retrieve/pop3", "retrieve/imap"]);
    for phase in phases {
        assert_eq!(phase["messages"], MESSAGES, "{phase}");
        assert!(phase["latency"]["p99_ms"].as_f64().expect("p99") > 0.0);
        assert!(phase["server_cpu_seconds"].as_f64().is_some(), "{phase}");
    }
    let delivered_bytes = phases[0]["bytes"].as_u64().expect("bytes");
    for phase in &phases[1..] {
        let verification = &phase["verification"];
        assert_eq!(verification["matched"], MESSAGES, "{phase}");
        assert_eq!(verification["missing"], 0);
        assert_eq!(verification["mismatched"], 0);
        assert_eq!(phase["bytes"], delivered_bytes);
    }
    assert!(report["sizes"]["max"].as_u64().expect("max") <= 204_800);

    // The same corpus read back alone, over IMAPS this time and trusting any certificate, one
    // message per FETCH and then many: the tag and seed find it again, and the server still
    // holds exactly one copy of each.
    let imaps = format!("tls://{}", server.address(ListenerKind::ImapTls));
    let output = loadtest(&arguments(
        &server,
        "retrieve",
        &imaps,
        &json,
        &["--tag", "smoke1", "--retrieve", "imap,imap-batch", "--insecure"],
    ));
    let report = read_report(&output, &json);
    assert_eq!(report["errors_total"], 0);
    for (phase, name) in ["retrieve/imap", "retrieve/imap-batch"].into_iter().enumerate() {
        assert_eq!(report["phases"][phase]["name"], name);
        assert_eq!(report["phases"][phase]["verification"]["matched"], MESSAGES, "{name}");
    }
    assert!(started.elapsed() < Duration::from_secs(40), "took {:?}", started.elapsed());
}
