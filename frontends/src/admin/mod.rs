//! The operator's control of a running server: a Unix socket (`<data-dir>/admin.sock`, mode
//! 0600) that takes one JSON command per connection and answers with one JSON reply. The CLI
//! uses it when the store is locked by the server, and runs the same commands on the engine
//! directly when no server is running.

mod client;
mod command;
mod compaction;
mod execute;
mod mail;
pub mod server;
mod stats;
mod time;
pub mod wire;

pub use client::send;
pub use command::{AdminCommand, AdminOutput, AdminReply};
pub use execute::{APP_PASSWORDS_MAX, AdminError, execute, generate_app_password};
pub use time::format_unix_ms;

/// The socket's file name in the data directory.
pub const SOCKET_FILE: &str = "admin.sock";
/// Longest request line, in bytes (a command and its names; a message follows as payload).
pub const REQUEST_LINE_BYTES_MAX: usize = 1024 * 1024;
/// Longest reply line, in bytes: a listing (`mailbox messages` of a mailbox of millions, say)
/// comes from the server the client trusts.
pub const REPLY_LINE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Longest payload after a line (a message `append` stores or `cat` reads): the largest the
/// engine stores.
pub const PAYLOAD_BYTES_MAX: usize = mailvault_engine::format::MESSAGE_BYTES_MAX;
