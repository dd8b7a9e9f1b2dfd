//! Throwaway `SoftHSM2` tokens for tests, in this crate and in others (engine, frontends).
//!
//! Isolation: every `TestToken` is a new token with a unique label (`mvtest-<pid>-<n>-<time>`)
//! and random PINs, created in-process on `SoftHSM2`'s free slot, so tests never share keys and
//! can run in parallel, both as threads of one process (`cargo test`: token creation is
//! serialized by `bootstrap::init_token`, everything after runs in parallel) and as separate
//! processes (`cargo nextest`: each process has its own free slot; new token directories get
//! random names). All tokens live in the directory named by the `SOFTHSM2_CONF` file that
//! `.cargo/config.toml` sets; the file and directory are created on first use.
//!
//! Clean-up: dropping a `TestToken` deletes its token directory (keep it alive while you use
//! its `hsm`). Tokens of test processes that died without dropping (abort, SIGKILL) are swept
//! once per process: a token whose label names a pid that no longer runs and that has not
//! changed for `STALE_TOKEN_AGE` is deleted. Without this every run would leave tokens behind
//! and every later `C_Initialize` would load them all.

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bootstrap;
use crate::config::{DEFAULT_MODULE_PATH, HsmConfig, Pin};
use crate::error::HsmError;
use crate::session::Hsm;

const TEST_LABEL_PREFIX: &str = "mvtest-";
const STALE_TOKEN_AGE: Duration = Duration::from_secs(300);
static TOKEN_COUNTER: AtomicU64 = AtomicU64::new(0);
static SWEEP: Once = Once::new();

/// A fresh token, opened. Keys are not created: call `ensure_keys` (or use
/// [`TestToken::create_with_keys`]); tests of "key missing" need a token without them.
#[derive(Debug)]
pub struct TestToken {
    pub config: HsmConfig,
    pub hsm: Hsm,
    /// The token's directory, deleted on drop; `None` if it could not be identified.
    token_files: Option<PathBuf>,
}

impl TestToken {
    /// Creates a token; panics with the reason if `SoftHSM2` is not usable (this is a test helper).
    pub fn create() -> TestToken {
        match TestToken::try_create() {
            Ok(token) => token,
            Err(error) => panic!("creating a SoftHSM2 test token failed: {error}"),
        }
    }

    /// [`TestToken::create`], then `ensure_keys` on it.
    pub fn create_with_keys() -> TestToken {
        let token = TestToken::create();
        if let Err(error) = token.hsm.session().and_then(|session| session.ensure_keys()) {
            panic!("creating keys on test token {} failed: {error}", token.config.token_label);
        }
        token
    }

    pub fn try_create() -> Result<TestToken, HsmError> {
        let token_dir = token_dir_from_env()?;
        SWEEP.call_once(|| sweep_stale_tokens(&token_dir));
        let module_path =
            std::env::var_os("MAILVAULT_HSM_MODULE").map_or_else(|| PathBuf::from(DEFAULT_MODULE_PATH), PathBuf::from);
        let config = HsmConfig { module_path, token_label: unique_label(), pin: random_pin()? };
        bootstrap::init_token(&config.module_path, &config.token_label, &random_pin()?, &config.pin)?;
        TestToken::adopt_in(config, &token_dir)
    }

    /// Takes ownership of an existing token (for tests that create one through
    /// `bootstrap::init_token` themselves): opens it, and deletes it when dropped.
    pub fn adopt(config: HsmConfig) -> Result<TestToken, HsmError> {
        let token_dir = token_dir_from_env()?;
        TestToken::adopt_in(config, &token_dir)
    }

    fn adopt_in(config: HsmConfig, token_dir: &Path) -> Result<TestToken, HsmError> {
        let hsm = Hsm::open(&config)?;
        let token_files = hsm.token_serial().ok().and_then(|serial| find_token_files(token_dir, &serial));
        Ok(TestToken { config, hsm, token_files })
    }
}

impl Drop for TestToken {
    fn drop(&mut self) {
        if let Some(directory) = &self.token_files {
            remove_token_files(directory);
        }
    }
}

/// The token directory of the config `SOFTHSM2_CONF` names, creating both if missing.
fn token_dir_from_env() -> Result<PathBuf, HsmError> {
    let conf_path = std::env::var_os("SOFTHSM2_CONF").map(PathBuf::from).ok_or_else(|| HsmError::Config {
        what: "SOFTHSM2_CONF is not set (cargo sets it from .cargo/config.toml)".to_owned(),
    })?;
    prepare_conf(&conf_path)
}

/// Ensures the config exists; returns the token directory it names.
fn prepare_conf(conf_path: &Path) -> Result<PathBuf, HsmError> {
    if conf_path.exists() {
        if let Some(token_dir) = bootstrap::token_dir_from_conf(conf_path)? {
            return Ok(token_dir);
        }
        return Err(HsmError::Config { what: format!("{} names no token directory", conf_path.display()) });
    }
    let token_dir = conf_path.parent().unwrap_or(Path::new(".")).join("tokens");
    bootstrap::ensure_softhsm_conf(conf_path, &token_dir)?;
    bootstrap::token_dir_from_conf(conf_path)?
        .ok_or_else(|| HsmError::Config { what: format!("{} names no token directory", conf_path.display()) })
}

/// Unique across processes (pid), threads (counter) and pid reuse (time). At most 31 bytes.
fn unique_label() -> String {
    let count = TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed) % 100_000;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
    format!("{TEST_LABEL_PREFIX}{}-{count}-{:x}", std::process::id(), nanos & 0xff_ffff_ffff)
}

fn random_pin() -> Result<Pin, HsmError> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0_u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| HsmError::Config { what: format!("no OS randomness: {error}") })?;
    let pin = bytes
        .iter()
        .flat_map(|byte| [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]])
        .map(char::from)
        .collect();
    Ok(Pin::new(pin))
}

/// `SoftHSM2` names a token's directory with a UUID whose last 16 hex digits are the token's
/// serial number (observed in 2.6.1).
fn find_token_files(token_dir: &Path, serial: &str) -> Option<PathBuf> {
    let serial = serial.to_ascii_lowercase();
    std::fs::read_dir(token_dir).ok()?.flatten().map(|entry| entry.path()).find(|path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.replace('-', "").to_ascii_lowercase().ends_with(&serial))
    })
}

/// Moves the directory out of the token directory first (atomic), so that a process scanning
/// tokens at that moment sees the whole token or none of it, then deletes it.
fn remove_token_files(directory: &Path) {
    let (Some(token_dir), Some(name)) = (directory.parent(), directory.file_name()) else {
        return;
    };
    let mut trash_name = token_dir.as_os_str().to_owned();
    trash_name.push(".trash");
    let trash = PathBuf::from(trash_name);
    if std::fs::create_dir_all(&trash).is_err() {
        return;
    }
    let target = trash.join(name);
    if std::fs::rename(directory, &target).is_ok() {
        let _ = std::fs::remove_dir_all(&target);
    }
}

/// Deletes test tokens left behind by processes that no longer run (see the module comment).
fn sweep_stale_tokens(token_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(token_dir) else {
        return;
    };
    for path in entries.flatten().map(|entry| entry.path()) {
        let Some(pid) = owner_pid(&path) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        let old = std::fs::metadata(&path)
            .and_then(|metadata| metadata.modified())
            .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age >= STALE_TOKEN_AGE));
        if !alive && old {
            remove_token_files(&path);
        }
    }
}

/// The pid in a test token's label, read from `SoftHSM2`'s token file (the label is stored there
/// verbatim); `None` for tokens that are not test tokens.
fn owner_pid(token_files: &Path) -> Option<u32> {
    let contents = std::fs::read(token_files.join("token.object")).ok()?;
    let prefix = TEST_LABEL_PREFIX.as_bytes();
    let start = contents.windows(prefix.len()).position(|window| window == prefix)? + prefix.len();
    let digits: String =
        contents[start..].iter().take_while(|byte| byte.is_ascii_digit()).map(|&byte| char::from(byte)).collect();
    digits.parse().ok()
}
