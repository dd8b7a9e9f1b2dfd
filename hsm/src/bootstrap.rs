//! Creating what the HSM needs before first use: the `SoftHSM2` config file and token directory,
//! and an initialized token with a user PIN.
//!
//! `init_token` works in-process (`C_InitToken` on the free slot, then `C_InitPIN`), so it can run
//! after the module is already initialized. `SoftHSM2` always keeps one uninitialized "free"
//! slot: after `C_InitToken` fills it, the next `C_GetSlotList` in the same process shows a new
//! one (verified with `SoftHSM2` 2.6.1), so one process can create any number of tokens.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::session::UserType;
use cryptoki::slot::Slot;

use crate::config::{Pin, check_token_label};
use crate::error::{HsmError, return_value};
use crate::pkcs11;
use crate::token_dir_lock::lock_token_dir;

/// Within one process every `init_token` picks "the" free slot: two at once would both take it.
static INIT_TOKEN: Mutex<()> = Mutex::new(());
/// Makes temporary file names unique within the process (the pid makes them unique across).
static TEMPORARY_COUNTER: AtomicU64 = AtomicU64::new(0);
const TOKENDIR_KEY: &str = "directories.tokendir";

/// The config file mailvault writes: its own token directory, file backend, quiet logs.
fn conf_contents(token_dir: &Path) -> String {
    format!(
        "# SoftHSM2 config for mailvault, written by mailvault_hsm::bootstrap.\n\
         {TOKENDIR_KEY} = {}\n\
         objectstore.backend = file\n\
         log.level = ERROR\n\
         slots.removable = false\n",
        token_dir.display()
    )
}

/// The token directory a `SoftHSM2` config file names, if it names one.
pub fn token_dir_from_conf(conf_path: &Path) -> Result<Option<PathBuf>, HsmError> {
    let contents = std::fs::read_to_string(conf_path)
        .map_err(HsmError::io(format!("reading SoftHSM2 config {}", conf_path.display())))?;
    Ok(contents.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == TOKENDIR_KEY).then(|| PathBuf::from(value.trim()))
    }))
}

/// Makes sure `conf_path` exists and points `SoftHSM2` at `token_dir` (created, mode 0700).
///
/// Idempotent, and safe when several processes race: the file is written to a unique temporary
/// name and renamed into place, so a reader never sees half a file. An existing config naming
/// another token directory is an error rather than silently rewritten: that would orphan tokens.
pub fn ensure_softhsm_conf(conf_path: &Path, token_dir: &Path) -> Result<(), HsmError> {
    let token_dir = std::path::absolute(token_dir)
        .map_err(HsmError::io(format!("resolving token directory {}", token_dir.display())))?;
    create_private_dir(&token_dir)?;
    if conf_path.exists() {
        return match token_dir_from_conf(conf_path)? {
            Some(existing) if existing == token_dir => Ok(()),
            existing => Err(HsmError::Config {
                what: format!(
                    "{} names token directory {:?}, not {}",
                    conf_path.display(),
                    existing,
                    token_dir.display()
                ),
            }),
        };
    }
    if let Some(parent) = conf_path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(HsmError::io(format!("creating {}", parent.display())))?;
    }
    let temporary = conf_path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        TEMPORARY_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(conf_contents(&token_dir).as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, conf_path)
    };
    write().map_err(|source| {
        let _ = std::fs::remove_file(&temporary);
        HsmError::Io { what: format!("writing SoftHSM2 config {}", conf_path.display()), source }
    })
}

fn create_private_dir(path: &Path) -> Result<(), HsmError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(HsmError::io(format!("creating token directory {}", path.display())))
}

/// Makes sure a token labelled `label` exists with a user PIN. Idempotent: an existing token is
/// left alone (only a missing user PIN, from an interrupted earlier run, is set).
pub fn init_token(module_path: &Path, label: &str, so_pin: &Pin, user_pin: &Pin) -> Result<(), HsmError> {
    check_token_label(label)?;
    if so_pin.is_empty() || user_pin.is_empty() {
        return Err(HsmError::PinMissing);
    }
    let _guard = INIT_TOKEN.lock().unwrap_or_else(PoisonError::into_inner);
    let _token_dir_lock = lock_token_dir()?;
    let context = pkcs11::context(module_path)?;
    if let Some(slot) = pkcs11::find_slot(&context, label)? {
        let info = context.get_token_info(slot).map_err(HsmError::pkcs11("C_GetTokenInfo"))?;
        if !info.user_pin_initialized() {
            init_user_pin(&context, slot, so_pin, user_pin)?;
        }
        return Ok(());
    }
    let slot = pkcs11::find_free_slot(&context)?.ok_or(HsmError::NoFreeSlot)?;
    context.init_token(slot, &so_pin.to_auth_pin(), label).map_err(HsmError::pkcs11("C_InitToken"))?;
    init_user_pin(&context, slot, so_pin, user_pin)
}

fn init_user_pin(context: &Pkcs11, slot: Slot, so_pin: &Pin, user_pin: &Pin) -> Result<(), HsmError> {
    let session = context.open_rw_session(slot).map_err(HsmError::pkcs11("C_OpenSession"))?;
    session.login(UserType::So, Some(&so_pin.to_auth_pin())).map_err(|error| match return_value(&error) {
        Some(RvError::PinIncorrect) => HsmError::WrongPin,
        _ => HsmError::pkcs11("C_Login (SO)")(error),
    })?;
    session.init_pin(&user_pin.to_auth_pin()).map_err(HsmError::pkcs11("C_InitPIN"))?;
    session.logout().map_err(HsmError::pkcs11("C_Logout (SO)"))
}
