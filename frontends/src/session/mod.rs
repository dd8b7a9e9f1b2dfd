//! Protocol sessions: state machines over the engine API, driven through [`SessionIo`].
//! The frontends hold no mail state of their own.
//!
//! A listener hands each connection and its [`SessionContext`] (engine, login, live-session
//! registry, limits, interruptible reads) to the protocol's `serve`.

pub mod auth;
pub mod context;
pub mod exchange;
pub mod imap;
mod io;
pub mod lmtp;
pub mod pop3;
pub mod registry;

pub use context::SessionContext;
pub use io::SessionIo;
