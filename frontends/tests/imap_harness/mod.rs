//! A real IMAP server for end-to-end tests: a store on a SoftHSM test token, the shared
//! authenticator, and the IMAP session behind the real TLS `Connection`, on two loopback
//! listeners (STARTTLS and implicit TLS) on a compio runtime thread; plus runners for the
//! Python `imaplib` client and `curl`, bounded in time.
#![allow(dead_code, unreachable_pub, clippy::expect_used)] // test support: a failed expectation fails the test

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailvault_engine::{Engine, EngineConfig, Flags, block_on, init_store};
use mailvault_frontends::net::Connection;
use mailvault_frontends::net::tls::{CertificateSource, load};
use mailvault_frontends::session::auth::{Authenticator, RateLimit};
use mailvault_frontends::session::context::{ProtocolSettings, Services};
use mailvault_frontends::session::imap::{ImapOptions, serve_with};
use mailvault_frontends::session::registry::{Protocol, SessionRegistry};
use mailvault_frontends::session::{SessionContext, SessionIo};
use mailvault_hsm::password::{PasswordParams, hash_password};
use mailvault_hsm::testing::TestToken;

pub const ACCOUNT: &str = "alice";
pub const PASSWORD: &str = "correct horse battery staple";
/// Longest a client run may take before it is killed and the test fails.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// A running server; stops when dropped.
pub struct ImapServer {
    pub engine: Engine,
    pub registry: Arc<SessionRegistry>,
    /// What the listeners hand each session; tests can drive sessions in-process with it.
    pub services: Arc<Services>,
    pub plain: SocketAddr,
    pub implicit_tls: SocketAddr,
    stop: Option<flume::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _directory: tempfile::TempDir,
    _token: TestToken,
}

impl ImapServer {
    /// A server with the account `alice` (password [`PASSWORD`]) and IDLE polling every
    /// 100 ms, so that tests need not wait.
    pub fn start() -> Self {
        Self::start_with(ProtocolSettings::default_for(Protocol::Imap))
    }

    /// [`ImapServer::start`] with other IMAP limits and idle timeout.
    pub fn start_with(imap: ProtocolSettings) -> Self {
        let options = ImapOptions { idle_poll_interval: Duration::from_millis(100), ..ImapOptions::default() };
        Self::start_with_options(imap, options)
    }

    /// [`ImapServer::start_with`] with other IMAP-only options (search budgets, say).
    pub fn start_with_options(imap: ProtocolSettings, options: ImapOptions) -> Self {
        let token = TestToken::create_with_keys();
        let directory = tempfile::tempdir().expect("temporary directory");
        let data_dir = directory.path().join("store");
        init_store(&data_dir, 1).expect("init store");
        let engine = Engine::open(&EngineConfig::new(&data_dir), &token.hsm).expect("open engine");
        // Cheap argon2 parameters: the tests check the flow, not the cost.
        let params = PasswordParams { memory_kib: 8 * 1024, iterations: 1, parallelism: 1 };
        let hash = hash_password(&params, PASSWORD).expect("hash password");
        block_on(async {
            engine.create_account(ACCOUNT).await.expect("create account");
            engine.set_password(ACCOUNT, hash).await.expect("set password");
        });
        let tls_directory = directory.path().join("tls");
        let tls = load(&CertificateSource::SelfSigned { directory: tls_directory }, &["localhost".to_owned()])
            .expect("TLS configuration")
            .config;
        let registry = SessionRegistry::new();
        let services = Arc::new(Services {
            engine: engine.clone(),
            registry: registry.clone(),
            authenticator: Authenticator::start(engine.clone(), &token.hsm, 1, RateLimit::default())
                .expect("authenticator"),
            host_name: "localhost".to_owned(),
            tls_available: true,
            lmtp: ProtocolSettings::default_for(Protocol::Lmtp),
            pop3: ProtocolSettings::default_for(Protocol::Pop3),
            imap,
        });
        let plain_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let tls_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let plain = plain_listener.local_addr().expect("address");
        let implicit_tls = tls_listener.local_addr().expect("address");
        let (stop, stopped) = flume::bounded::<()>(1);
        let shared = services.clone();
        let thread = std::thread::spawn(move || {
            let runtime = compio::runtime::Runtime::new().expect("runtime");
            runtime.block_on(async move {
                let listeners = [(plain_listener, false), (tls_listener, true)];
                let accepting: Vec<_> = listeners
                    .into_iter()
                    .map(|(listener, implicit)| {
                        let listener = compio::net::TcpListener::from_std(listener).expect("listener");
                        compio::runtime::spawn(accept_loop(listener, implicit, shared.clone(), tls.clone(), options))
                    })
                    .collect();
                let _ = stopped.recv_async().await;
                drop(accepting);
            });
        });
        Self {
            engine,
            registry,
            services,
            plain,
            implicit_tls,
            stop: Some(stop),
            thread: Some(thread),
            _directory: directory,
            _token: token,
        }
    }

    /// Runs one scenario of `imap_client.py` and fails the test if it does not pass.
    /// Returns its standard output.
    pub fn run_scenario(&self, scenario: &str) -> String {
        run_scenario_at(self.plain.port(), self.implicit_tls.port(), scenario)
    }

    /// Runs a scenario that prints `signal` when it wants `action` to happen (a delivery while
    /// it idles, say), then waits for it to pass.
    pub fn run_scenario_with(&self, scenario: &str, signal: &str, action: impl FnOnce()) -> String {
        let mut child = self.python(scenario).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("python3");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, received) = flume::unbounded();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        let mut seen = Vec::new();
        let signalled = loop {
            match received.recv_deadline(deadline) {
                Ok(line) if line == signal => break true,
                Ok(line) => seen.push(line),
                Err(_) => break false,
            }
        };
        if signalled {
            action();
        }
        let output = wait_bounded(child, CLIENT_TIMEOUT);
        let _ = reader.join();
        seen.extend(received.drain());
        let output = Output { stdout: seen.join("\n").into_bytes(), ..output };
        assert!(signalled, "{scenario} never printed {signal}: {}", String::from_utf8_lossy(&output.stderr));
        check_passed(scenario, &output)
    }

    fn python(&self, scenario: &str) -> Command {
        python(self.plain.port(), self.implicit_tls.port(), scenario)
    }

    /// Stores `body` in INBOX the way LMTP delivery does (through the engine); its uid.
    pub fn deliver(&self, body: &[u8]) -> u32 {
        block_on(self.engine.append(ACCOUNT, "INBOX", body.to_vec(), Flags::default(), None)).expect("deliver")
    }
}

/// Runs `curl` with `arguments` (plus a time limit and the account's credentials); returns
/// its output, whatever its status.
pub fn curl(arguments: &[&str]) -> Output {
    curl_checked(&["--insecure"], arguments)
}

/// [`curl`] with other TLS arguments (`--cacert FILE` to check the server's certificate).
pub fn curl_checked(tls_arguments: &[&str], arguments: &[&str]) -> Output {
    let child = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "30"])
        .args(tls_arguments)
        .args(["--user", &format!("{ACCOUNT}:{PASSWORD}")])
        .args(arguments)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    wait_bounded(child, CLIENT_TIMEOUT)
}

impl Drop for ImapServer {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs one scenario of `imap_client.py` against any server with these ports and the
/// account [`ACCOUNT`] (password [`PASSWORD`]); fails the test if it does not pass.
pub fn run_scenario_at(plain_port: u16, tls_port: u16, scenario: &str) -> String {
    let child =
        python(plain_port, tls_port, scenario).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("python3");
    let output = wait_bounded(child, CLIENT_TIMEOUT);
    check_passed(scenario, &output)
}

fn python(plain_port: u16, tls_port: u16, scenario: &str) -> Command {
    let mut command = Command::new("python3");
    command
        .arg(script_path())
        .arg(scenario)
        .env("IMAP_PLAIN_PORT", plain_port.to_string())
        .env("IMAP_TLS_PORT", tls_port.to_string())
        .env("IMAP_USER", ACCOUNT)
        .env("IMAP_PASSWORD", PASSWORD)
        .env("PYTHONUNBUFFERED", "1");
    command
}

fn script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("imap_client.py")
}

fn check_passed(scenario: &str, output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && stdout.lines().any(|line| line == "PASSED"),
        "scenario {scenario} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Waits for `child`, killing it past `timeout`.
fn wait_bounded(mut child: Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => panic!("waiting for a client: {error}"),
        }
    }
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let _ = child.kill();
    }
    child.wait_with_output().expect("client output")
}

async fn accept_loop(
    listener: compio::net::TcpListener,
    implicit_tls: bool,
    services: Arc<Services>,
    tls: Arc<rustls::ServerConfig>,
    options: ImapOptions,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        let services = services.clone();
        let tls = tls.clone();
        compio::runtime::spawn(async move {
            let Ok(live) = services.registry.connect(Protocol::Imap, peer) else { return };
            let mut connection = Connection::new(stream, peer, Some(tls));
            if implicit_tls && connection.start_tls().await.is_err() {
                return;
            }
            let context = SessionContext::new(services, live, Protocol::Imap, peer);
            serve_with(&mut connection, &context, options).await;
            drop(context);
            connection.close().await;
        })
        .detach();
    }
}
