//! Pure protocol codecs for LMTP, POP3 and IMAP: bytes in, a parsed command (or a request for
//! more bytes, or a typed error) out; replies built into byte vectors. No IO, no engine calls.
//! (Full API overview to follow.)

pub mod dot_stuffing;
pub mod imap;
pub mod lmtp;
pub mod pop3;
pub mod sasl;

mod base64;
mod limits;
mod line;
mod parsed;
mod secret;

pub use limits::{
    IMAP_LINE_BYTES_MAX, LITERAL_BYTES_MAX, LMTP_LINE_BYTES_MAX, Limits, MESSAGE_BYTES_MAX,
    NESTING_DEPTH_MAX, PATH_BYTES_MAX, POP3_LINE_BYTES_MAX, RECIPIENTS_MAX,
};
pub use line::{LineDiscard, discard_line};
pub use parsed::{Parsed, Rejected};
pub use secret::Secret;
