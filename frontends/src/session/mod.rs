//! Protocol sessions: state machines over the engine API, driven through [`SessionIo`].
//! The frontends hold no mail state of their own.

mod io;

pub use io::SessionIo;
