//! POP3 (RFC 1939 with RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH): command parsing and
//! reply building.
//!
//! A session calls [`parse_command`] on its buffer until `NeedsMoreData`, dropping
//! `consumed_bytes` after each command. After `AUTH PLAIN` without an initial response it
//! sends [`write_challenge`] and reads the answer with
//! [`sasl::parse_response_line`](crate::proto::sasl::parse_response_line).

mod command;
mod error;
mod reply;

pub use command::{Command, parse_command};
pub use error::ParseError;
pub use reply::{
    Capability, Reply, ResponseCode, message_top, write_capabilities, write_challenge, write_listing, write_multiline,
};
