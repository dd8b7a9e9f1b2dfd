//! A cross-process lock around the PKCS#11 calls that make `SoftHSM2` read or change its token
//! directory: `C_Initialize`/`C_GetSlotList` (which load every token found there) and
//! `C_InitToken`/`C_InitPIN` (which write a new one).
//!
//! Why: `SoftHSM2` 2.6.1 aborts the whole process (an assertion in `SlotManager::insertToken`)
//! when it loads a token directory that another process is writing at that moment. Test runs
//! hit it (many processes create tokens in one directory), and so could two `mailvault keys`
//! commands started together. The lock is an advisory `flock` on `<SOFTHSM2_CONF>.lock`, taken
//! only when `SOFTHSM2_CONF` is set (that is, for `SoftHSM2`); other modules never see it.

use std::fs::File;
use std::path::PathBuf;

use rustix::fs::{FlockOperation, flock};

use crate::error::HsmError;

/// Holds the lock until dropped (closing the file releases it).
#[derive(Debug)]
pub(crate) struct TokenDirLock {
    _file: File,
}

/// Blocks until this process holds the lock; `None` when `SOFTHSM2_CONF` is unset. Each call
/// opens the file anew, so two threads of one process also exclude each other (`flock` locks
/// belong to the open file); never nest two calls in one thread.
pub(crate) fn lock_token_dir() -> Result<Option<TokenDirLock>, HsmError> {
    let Some(conf) = std::env::var_os("SOFTHSM2_CONF") else {
        return Ok(None);
    };
    let mut path = conf;
    path.push(".lock");
    let path = PathBuf::from(path);
    let what = || format!("locking {}", path.display());
    let file = match std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path) {
        Ok(file) => file,
        // No directory for the config yet: SoftHSM2 cannot have tokens there either.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(HsmError::io(what())(error)),
    };
    flock(&file, FlockOperation::LockExclusive).map_err(|error| HsmError::io(what())(error.into()))?;
    Ok(Some(TokenDirLock { _file: file }))
}
