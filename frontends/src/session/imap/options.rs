//! IMAP-only settings; the rest (engine, login, registry, limits, idle timeout) comes with
//! the shared [`SessionContext`](crate::session::SessionContext).

use std::time::Duration;

/// How often an idling client's mailbox is compared with the engine. The engine has no change
/// notifications yet, so IDLE polls; each poll lists the mailbox's messages.
pub const IDLE_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// Most messages whose bodies one SEARCH reads (header, body and text keys).
pub const SEARCH_MESSAGES_MAX: usize = 20_000;
/// Most message bytes one SEARCH reads.
pub const SEARCH_BYTES_MAX: u64 = 2 * 1024 * 1024 * 1024;
/// Commands refused in a row (BAD) before the session closes: a client that only sends
/// garbage is not a client.
pub const CONSECUTIVE_BAD_COMMANDS_MAX: u32 = 20;

/// IMAP settings beyond the shared [`ProtocolSettings`](crate::session::context::ProtocolSettings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImapOptions {
    /// See [`IDLE_POLL_INTERVAL`].
    pub idle_poll_interval: Duration,
    /// See [`SEARCH_MESSAGES_MAX`].
    pub search_messages_max: usize,
    /// See [`SEARCH_BYTES_MAX`].
    pub search_bytes_max: u64,
    /// See [`CONSECUTIVE_BAD_COMMANDS_MAX`].
    pub consecutive_bad_commands_max: u32,
}

impl Default for ImapOptions {
    fn default() -> Self {
        Self {
            idle_poll_interval: IDLE_POLL_INTERVAL,
            search_messages_max: SEARCH_MESSAGES_MAX,
            search_bytes_max: SEARCH_BYTES_MAX,
            consecutive_bad_commands_max: CONSECUTIVE_BAD_COMMANDS_MAX,
        }
    }
}
