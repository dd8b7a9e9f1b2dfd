//! LMTP (RFC 2033): command parsing, the DATA body decoder and reply building.
//!
//! A session reads into a buffer and calls [`parse_command`] until it returns
//! `NeedsMoreData`, dropping `consumed_bytes` after each command (PIPELINING puts several in
//! one buffer). After `DATA` it replies [`Reply::start_data`] and feeds the following bytes
//! to a [`DataDecoder`]. A [`ParseError`] or [`DataError`] names its own [`Reply`].

mod command;
mod data;
mod error;
mod path;
mod reply;

pub use command::{BodyType, Command, MailParameters, parse_command};
pub use data::{DataDecoder, DataError, DataStatus};
pub use error::ParseError;
pub use path::{Address, ForwardPath, ReversePath};
pub use reply::{Capability, EnhancedStatus, Reply};
