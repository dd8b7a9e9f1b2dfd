//! Keeps this process's PKCS#11 calls apart from its own changes to token objects.
//!
//! `SoftHSM2`'s file object store is not safe against one thread creating or destroying a
//! token object while another thread reads token objects: the reader may load the new
//! object's file before all of its attributes are in it. Seen in tests (about one purge in
//! twenty, with `SoftHSM2`'s syslog captured): `C_GenerateKey` of a new KEK failed with
//! `CKR_GENERAL_ERROR` ("Could not initialize the attribute") while shards unwrapped keys, and
//! an unwrap failed ("The attribute does not exist: 0x2", "Invalid AES key length (0 bits)").
//!
//! So every call goes through [`read`], which shares a process-wide lock, and key creation and
//! destruction hold it exclusively ([`administer`], taken by `kek::key_admin_lock`). An
//! operation of several calls (find the current KEK, then wrap under it) holds the shared side
//! for all of them ([`reading`]), or the KEK it found could be destroyed before it is used (the
//! regression test saw `CKR_OBJECT_HANDLE_INVALID`). The shared side is taken once per thread
//! however deeply operations nest, and not at all by the thread that administers (it holds the
//! whole lock already; taking it again would deadlock).

use std::cell::Cell;
use std::ops::Deref;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use cryptoki::session::Session;

static TOKEN_OBJECTS: RwLock<()> = RwLock::new(());

thread_local! {
    static ADMINISTERING: Cell<bool> = const { Cell::new(false) };
    /// How many [`Reading`] guards this thread holds (only the outermost holds the lock).
    static READING: Cell<u32> = const { Cell::new(0) };
}

/// Exclusive use of the token's objects within the process, until dropped.
#[derive(Debug)]
pub(crate) struct Administering {
    _guard: RwLockWriteGuard<'static, ()>,
}

impl Drop for Administering {
    fn drop(&mut self) {
        ADMINISTERING.set(false);
    }
}

/// Blocks until no other thread of the process is inside a PKCS#11 operation. Never called
/// inside [`reading`] (the write side would wait for this thread's own read side), nor nested.
pub(crate) fn administer() -> Administering {
    debug_assert_eq!(READING.get(), 0, "token objects administered inside a read operation");
    let guard = TOKEN_OBJECTS.write().unwrap_or_else(PoisonError::into_inner);
    ADMINISTERING.set(true);
    Administering { _guard: guard }
}

/// The shared side of the lock for one operation, until dropped.
pub(crate) struct Reading {
    _guard: Option<RwLockReadGuard<'static, ()>>,
}

impl Drop for Reading {
    fn drop(&mut self) {
        READING.set(READING.get() - 1);
    }
}

/// Holds the shared side for an operation of several calls (see the module comment).
pub(crate) fn reading() -> Reading {
    let outermost = READING.get() == 0 && !ADMINISTERING.get();
    let guard = outermost.then(|| TOKEN_OBJECTS.read().unwrap_or_else(PoisonError::into_inner));
    READING.set(READING.get() + 1);
    Reading { _guard: guard }
}

/// A session for one call, with the shared side held (or the whole lock, when administering).
pub(crate) struct SessionAccess<'a> {
    session: &'a Session,
    _reading: Reading,
}

impl Deref for SessionAccess<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        self.session
    }
}

pub(crate) fn read(session: &Session) -> SessionAccess<'_> {
    SessionAccess { session, _reading: reading() }
}
