//! The real server for end-to-end tests of LMTP, POP3, TLS and the admin socket: a store on a
//! SoftHSM test token, `RunningServer` on loopback ephemeral ports (in-process), or the built
//! `mailvault` binary; and runners for Python's mail clients, curl and openssl, each bounded in
//! time.
#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::missing_panics_doc)] // test support

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mailvault_engine::io::{FaultController, FaultyStorage};
use mailvault_engine::{Engine, EngineConfig, Flags, INBOX, block_on, init_store};
use mailvault_frontends::admin::{self, AdminCommand};
use mailvault_frontends::net::{ListenerKind, Ports, RunningServer, ServerConfig};
use mailvault_hsm::testing::TestToken;

/// Longest any client run may take before it is killed and the test fails.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The Python helper with every scenario.
pub const CLIENTS_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mail_clients.py");

/// A store of its own on a fresh SoftHSM test token, and an engine over it.
pub struct EngineStore {
    // Fields drop in order: the engine before its store and its token.
    pub engine: Engine,
    pub data_dir: PathBuf,
    pub directory: tempfile::TempDir,
    pub token: TestToken,
}

impl EngineStore {
    /// `shards` shards, opened by `open` (`Engine::open`, or an engine over faulty files).
    pub fn new(
        shards: usize,
        open: impl FnOnce(&EngineConfig, &mailvault_hsm::Hsm) -> Result<Engine, mailvault_engine::OpenError>,
    ) -> Self {
        let token = TestToken::create_with_keys();
        let directory = tempfile::tempdir().expect("temporary directory");
        let data_dir = directory.path().join("data");
        init_store(&data_dir, shards).expect("init store");
        let engine = open(&EngineConfig::new(&data_dir), &token.hsm).expect("open engine");
        Self { engine, data_dir, directory, token }
    }
}

/// A server running in this process, with its own store and token; stops when dropped.
pub struct TestServer {
    // Fields drop in order: the server before the engine, the engine before its token.
    server: Option<RunningServer>,
    pub engine: Engine,
    pub data_dir: PathBuf,
    directory: tempfile::TempDir,
    pub token: TestToken,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// Starts with the defaults changed by `configure` (ports are always ephemeral).
    pub fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_on(configure, Engine::open)
    }

    /// Starts on a store whose files fail as `controller` says (a full disk, say), with 1 MiB
    /// segments, so that a few messages reach the end of a segment's reserved space.
    pub fn start_on_faulty_disk(controller: &FaultController) -> Self {
        let faults = controller.clone();
        Self::start_on(
            |_| {},
            move |config, hsm| {
                let mut config = config.clone();
                config.segment_bytes_max = 1024 * 1024;
                Engine::open_with(&config, hsm, move |_, directory| FaultyStorage::new(directory, faults.clone()))
            },
        )
    }

    fn start_on(
        configure: impl FnOnce(&mut ServerConfig),
        open: impl FnOnce(&EngineConfig, &mailvault_hsm::Hsm) -> Result<Engine, mailvault_engine::OpenError>,
    ) -> Self {
        let EngineStore { engine, data_dir, directory, token } = EngineStore::new(2, open);
        let mut config = ServerConfig::new(&data_dir);
        config.workers = 2;
        config.verifier_threads = 1;
        configure(&mut config);
        config.ports = Ports::EPHEMERAL;
        let server = RunningServer::start(engine.clone(), &token.hsm, &config).expect("start server");
        Self { server: Some(server), engine, data_dir, directory, token }
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("server running")
    }

    pub fn address(&self, kind: ListenerKind) -> SocketAddr {
        self.server().address(kind).expect("listener")
    }

    pub fn port(&self, kind: ListenerKind) -> u16 {
        self.address(kind).port()
    }

    pub fn certificate(&self) -> PathBuf {
        self.server().certificate_path().to_owned()
    }

    /// Stops the server (the engine stays open for checks).
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
    }

    /// Runs an admin command the way the admin socket does.
    pub fn admin(&self, command: AdminCommand) -> String {
        let registry = self.server.as_ref().map(|server| server.registry().clone());
        block_on(admin::execute(command, &self.engine, &self.token.hsm, registry.as_deref()))
            .expect("admin command")
            .text
    }

    /// Creates `account` with `password` (argon2id, HSM-peppered, as the CLI does).
    pub fn add_account(&self, account: &str, password: &str) {
        self.admin(AdminCommand::AccountAdd { account: account.to_owned() });
        self.admin(AdminCommand::AccountPassword { account: account.to_owned(), password: password.to_owned() });
    }

    /// Adds an app password and returns it.
    pub fn add_app_password(&self, account: &str, label: &str) -> String {
        let output = self.admin(AdminCommand::AppPasswordAdd { account: account.to_owned(), label: label.to_owned() });
        output.rsplit(": ").next().expect("generated password").trim().to_owned()
    }

    /// Stores `body` in the account's INBOX directly; returns its uid.
    pub fn append(&self, account: &str, body: &[u8]) -> u32 {
        block_on(self.engine.append(account, INBOX, body.to_vec(), Flags::default(), None)).expect("append")
    }

    /// The account's INBOX messages, in uid order.
    pub fn inbox(&self, account: &str) -> Vec<Vec<u8>> {
        block_on(async {
            let (_, messages) = self.engine.list_messages(account, INBOX).await.expect("list");
            let mut bodies = Vec::new();
            for message in messages {
                bodies.push(self.engine.fetch(account, INBOX, message.uid).await.expect("fetch").body);
            }
            bodies
        })
    }

    /// Total messages in the store.
    pub fn message_count(&self) -> u64 {
        block_on(self.engine.stats()).expect("stats").iter().map(|shard| shard.messages).sum()
    }

    /// Runs `scenario` of the Python helper with `arguments` (JSON) against this server.
    pub fn python(&self, scenario: &str, arguments: &serde_json::Value) -> serde_json::Value {
        let mut arguments = arguments.clone();
        let object = arguments.as_object_mut().expect("arguments are an object");
        for kind in ListenerKind::ALL {
            object.insert(format!("{kind}_port"), self.port(kind).into());
        }
        object.insert("cafile".to_owned(), self.certificate().display().to_string().into());
        run_python(scenario, &arguments)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a scenario of `mail_clients.py`; it prints one JSON document. Fails the test if the
/// script fails.
pub fn run_python(scenario: &str, arguments: &serde_json::Value) -> serde_json::Value {
    let child = Command::new("python3")
        .arg(CLIENTS_SCRIPT)
        .arg(scenario)
        .arg(arguments.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let output = wait_bounded(child, CLIENT_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{scenario} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}", output.status);
    let last = stdout.lines().rfind(|line| !line.trim().is_empty()).unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|error| panic!("{scenario}: bad JSON ({error}):\n{stdout}\n{stderr}"))
}

/// Waits for `child` at most `timeout`; kills it past that and fails the test.
pub fn wait_bounded(mut child: Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(stdout) = stdout.as_mut() {
            let _ = stdout.read_to_end(&mut bytes);
        }
        bytes
    });
    let err_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.read_to_end(&mut bytes);
        }
        bytes
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child process did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: out_reader.join().unwrap_or_default(), stderr: err_reader.join().unwrap_or_default() }
}

/// Runs a command with a time limit; returns its output whatever the exit status.
pub fn run_bounded(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn command");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    wait_bounded(child, CLIENT_TIMEOUT)
}

/// A raw line-protocol conversation over plain TCP, for malformed input no real client sends.
pub struct RawClient {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl RawClient {
    pub fn connect(address: SocketAddr) -> Self {
        let stream = TcpStream::connect(address).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Self { stream, reader }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// One reply line, CRLF removed; empty at end of stream.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let _ = self.reader.read_line(&mut line);
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    /// An SMTP/LMTP reply (continuation lines included): the lines.
    pub fn smtp_reply(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            let last = line.len() < 4 || line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines;
            }
        }
    }

    /// A POP3 multi-line reply after its status line: the lines up to ".".
    pub fn pop3_listing(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        for _ in 0..100_000 {
            let line = self.line();
            if line == "." || line.is_empty() && lines.last().is_some_and(String::is_empty) {
                break;
            }
            lines.push(line);
        }
        lines
    }
}

/// The `mailvault` binary built with these tests.
pub fn mailvault_binary() -> &'static str {
    env!("CARGO_BIN_EXE_mailvault")
}

/// A `mailvault` command on `data_dir` with the HSM settings of `token` in its environment
/// (never in its arguments).
pub fn mailvault_command(token: &TestToken, data_dir: &Path) -> Command {
    let mut command = Command::new(mailvault_binary());
    command
        .env("MAILVAULT_DATA_DIR", data_dir)
        .env("MAILVAULT_HSM_MODULE", &token.config.module_path)
        .env("MAILVAULT_HSM_TOKEN", &token.config.token_label)
        .env("MAILVAULT_HSM_PIN", token.config.pin.expose_secret())
        .env_remove("MAILVAULT_HSM_PIN_FILE")
        .env("MAILVAULT_LOG", "warn");
    command
}

/// A store of two shards made by the binary (`mailvault init`), with `account` added
/// (`mailvault account add`); fails the test if either command fails.
pub fn init_with_account(token: &TestToken, data_dir: &Path, account: &str) {
    for arguments in [&["init", "--shards", "2"][..], &["account", "add", account]] {
        let output = run_bounded(mailvault_command(token, data_dir).args(arguments), b"");
        assert!(output.status.success(), "{arguments:?}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

/// `mailvault serve` as a child process on ephemeral ports; killed if still running on drop.
pub struct ServerProcess {
    pub child: Child,
    pub listening: Vec<(String, SocketAddr)>,
    pub stdout: std::sync::mpsc::Receiver<String>,
}

impl ServerProcess {
    /// Starts the binary and waits (bounded) until it prints that it serves.
    pub fn start(token: &TestToken, data_dir: &Path) -> Self {
        Self::start_with(token, data_dir, &[])
    }

    /// As [`Self::start`], with `options` (global ones, say) before `serve`'s.
    pub fn start_with(token: &TestToken, data_dir: &Path, options: &[&str]) -> Self {
        Self::start_serving(token, data_dir, options, &[])
    }

    /// As [`Self::start_with`], with `serve_options` after `serve`'s own.
    pub fn start_serving(token: &TestToken, data_dir: &Path, options: &[&str], serve_options: &[&str]) -> Self {
        Self::spawn(mailvault_command(token, data_dir), options, serve_options, Stdio::inherit())
    }

    /// As [`Self::start`], with the server's log at `info` written to `log`.
    pub fn start_logging_to(token: &TestToken, data_dir: &Path, log: std::fs::File) -> Self {
        let mut command = mailvault_command(token, data_dir);
        command.env("MAILVAULT_LOG", "info");
        Self::spawn(command, &[], &[], log.into())
    }

    fn spawn(mut command: Command, options: &[&str], serve_options: &[&str], stderr: Stdio) -> Self {
        let mut child = command
            .args(options)
            .args(["serve", "--shards", "2"])
            // One listener worker per shard either way (the two options exclude each other).
            .args(if serve_options.contains(&"--frontends-on-shards") { &[][..] } else { &["--listener-threads", "2"] })
            .args([
                "--lmtp-port",
                "0",
                "--pop3-port",
                "0",
                "--pop3s-port",
                "0",
                "--imap-port",
                "0",
                "--imaps-port",
                "0",
            ])
            .args(serve_options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("mailvault serve");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = Self { child, listening: Vec::new(), stdout: received };
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = process.stdout.recv_timeout(remaining).expect("server did not start in time");
            if let Some(rest) = line.strip_prefix("listening ") {
                let (name, address) = rest.split_once(' ').expect("listening NAME ADDRESS");
                process.listening.push((name.to_owned(), address.parse().expect("address")));
            }
            if line.starts_with("mailvault serving") {
                return process;
            }
        }
    }

    pub fn port(&self, name: &str) -> u16 {
        self.listening.iter().find(|(listening, _)| listening == name).expect("listener").1.port()
    }

    /// Sends SIGTERM (through `kill(1)`: the test crate stays free of unsafe code).
    pub fn terminate(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit; returns the rest of its standard output.
    pub fn wait(&mut self, timeout: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let rest = self.stdout.try_iter().collect();
                return (status, rest);
            }
            assert!(Instant::now() < deadline, "server did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A Python scenario with a `wait` step: started, then held at that step until [`go`](Self::go).
pub struct WaitingClient {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl WaitingClient {
    /// Starts `scenario` and returns once it reports that it is waiting.
    pub fn start(scenario: &str, arguments: &serde_json::Value) -> Self {
        let mut child = Command::new("python3")
            .arg(CLIENTS_SCRIPT)
            .arg(scenario)
            .arg(arguments.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("waiting line");
        assert!(line.contains("waiting"), "expected the scenario to wait, got {line:?}");
        Self { child, stdout }
    }

    /// Lets the scenario go on and returns its result.
    pub fn go(mut self) -> serde_json::Value {
        self.child.stdin.take().expect("stdin").write_all(b"go\n").expect("go");
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).expect("result");
        let output = wait_bounded(self.child, CLIENT_TIMEOUT);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let last = rest.lines().rfind(|line| !line.trim().is_empty()).unwrap_or_default();
        serde_json::from_str(last).expect("json result")
    }
}

/// The names of a process's threads (`self`, or a pid).
pub fn thread_names_of(process: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{process}/task"))
        .expect("/proc/<process>/task")
        .filter_map(|task| std::fs::read_to_string(task.expect("task").path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect()
}

/// A process's thread names once every thread has named itself. A new thread carries its
/// parent's name until it runs and sets its own, so the listing waits (bounded) until only one
/// thread carries `parent`, the name of the thread that started the others.
pub fn settled_thread_names(process: &str, parent: &str) -> Vec<String> {
    let parent: String = parent.chars().take(15).collect(); // Linux keeps 15 bytes
    let mut names = thread_names_of(process);
    for _ in 0..100 {
        if names.iter().filter(|name| **name == parent).count() <= 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        names = thread_names_of(process);
    }
    names
}
