//! The process-wide PKCS#11 contexts (one initialized module per path) and finding a token's
//! slot by its label.
//!
//! `C_Initialize` may be called once per process per module, and a module keeps per-process
//! state (the login state of each token is shared by all sessions of the process), so every
//! `Hsm` and the bootstrap code share one `Pkcs11` per module path. It is never finalized:
//! the module lives as long as the process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CryptokiError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;

use crate::config::Pin;
use crate::error::{HsmError, return_value};

static CONTEXTS: Mutex<BTreeMap<PathBuf, Pkcs11>> = Mutex::new(BTreeMap::new());
/// The PIN that last logged in to each (module, slot) in this process. PKCS#11 login state is
/// per token and process: once one session is logged in, `C_Login` on any other session returns
/// `CKR_USER_ALREADY_LOGGED_IN` without checking the PIN. Comparing against the PIN that did log
/// in keeps a wrong PIN a `WrongPin` even then.
static LOGGED_IN: Mutex<BTreeMap<(PathBuf, u64), Pin>> = Mutex::new(BTreeMap::new());

/// Logs `session` in as the user with `pin`; see [`LOGGED_IN`]. The registry stays locked
/// across `C_Login`, so no other thread can slip between a login and its being recorded.
pub(crate) fn login_user(module_path: &Path, slot: Slot, session: &Session, pin: &Pin) -> Result<(), HsmError> {
    let mut logins = LOGGED_IN.lock().unwrap_or_else(PoisonError::into_inner);
    let key = (module_path.to_owned(), slot.id());
    let Err(error) = session.login(UserType::User, Some(&pin.to_auth_pin())) else {
        logins.insert(key, pin.clone());
        return Ok(());
    };
    match return_value(&error) {
        // Logged in by an `Hsm` with another PIN: ours was never checked, so it is wrong.
        Some(RvError::UserAlreadyLoggedIn) if logins.get(&key).is_some_and(|other| !other.matches(pin)) => {
            Err(HsmError::WrongPin)
        }
        Some(RvError::UserAlreadyLoggedIn) => Ok(()),
        Some(RvError::PinIncorrect | RvError::PinLenRange | RvError::PinInvalid) => Err(HsmError::WrongPin),
        Some(RvError::PinLocked) => Err(HsmError::PinLocked),
        _ => Err(HsmError::pkcs11("C_Login")(error)),
    }
}

/// The initialized context for `module_path`, loading and initializing it on first use.
///
/// A failed load or initialization is not cached, so a process can retry once the cause is
/// fixed (for example once the `SoftHSM2` config file exists).
pub(crate) fn context(module_path: &Path) -> Result<Pkcs11, HsmError> {
    let mut contexts = CONTEXTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(context) = contexts.get(module_path) {
        return Ok(context.clone());
    }
    if !module_path.is_file() {
        return Err(HsmError::ModuleNotFound { path: module_path.to_owned() });
    }
    let load_error =
        |error: CryptokiError| HsmError::ModuleLoad { path: module_path.to_owned(), reason: error.to_string() };
    let context = Pkcs11::new(module_path).map_err(load_error)?;
    // OS locking: sessions are used from several threads at once (one per core).
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        // Another library in this process initialized the same module: its state is ours too.
        Err(error) if return_value(&error) == Some(RvError::CryptokiAlreadyInitialized) => {}
        Err(error) => return Err(load_error(error)),
    }
    contexts.insert(module_path.to_owned(), context.clone());
    Ok(context)
}

/// The slot holding the initialized token labelled `label`.
///
/// Slots whose token cannot be read are skipped: `SoftHSM2` reports `CKR_GENERAL_ERROR` for a token
/// whose directory another process removed after this one loaded it.
pub(crate) fn find_slot(context: &Pkcs11, label: &str) -> Result<Option<Slot>, HsmError> {
    let slots = context.get_slots_with_token().map_err(HsmError::pkcs11("C_GetSlotList"))?;
    let mut found = None;
    for slot in slots {
        let Ok(info) = context.get_token_info(slot) else {
            continue;
        };
        if info.token_initialized() && info.label() == label {
            if found.is_some() {
                return Err(HsmError::DuplicateToken { label: label.to_owned() });
            }
            found = Some(slot);
        }
    }
    Ok(found)
}

/// A slot with a token that is present but not initialized: where `C_InitToken` puts a new token.
pub(crate) fn find_free_slot(context: &Pkcs11) -> Result<Option<Slot>, HsmError> {
    let slots = context.get_slots_with_token().map_err(HsmError::pkcs11("C_GetSlotList"))?;
    Ok(slots.into_iter().find(|slot| context.get_token_info(*slot).is_ok_and(|info| !info.token_initialized())))
}
