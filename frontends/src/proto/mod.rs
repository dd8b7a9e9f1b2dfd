//! Pure protocol codecs for LMTP, POP3 and IMAP: bytes in, a parsed command (or a request for
//! more bytes, or a typed error) out; replies and responses appended to a `Vec<u8>`. No IO, no
//! engine calls, no state between calls except in the streaming DATA decoder.
//!
//! # Driving a codec from a session
//!
//! Keep one input buffer per connection. After each read, parse from the front:
//!
//! ```text
//! loop {
//!     match lmtp::parse_command(&buffer, &limits) {
//!         Ok(Parsed::Complete { value, consumed_bytes }) => { buffer.drain(..consumed_bytes); run(value) }
//!         Ok(Parsed::NeedsMoreData) => break,          // read more, then parse again from the front
//!         Err(rejected) => {                            // reply, then resynchronise
//!             send(rejected.error.reply());
//!             buffer.drain(..rejected.consumed_bytes);
//!             if !rejected.line_finished { discard_mode = true } // use discard_line until Finished
//!         }
//!     }
//! }
//! ```
//!
//! Parsers take the whole buffer every time and consume exactly one command, so pipelined
//! commands (LMTP and POP3 PIPELINING, IMAP) are handled by looping.
//!
//! # Shared
//!
//! - [`Parsed<T>`]: `Complete { value, consumed_bytes }` or `NeedsMoreData`.
//! - [`Rejected<E>`]: `{ error, consumed_bytes, line_finished }`; [`discard_line`] skips the
//!   rest of an over-long line ([`LineDiscard`]).
//! - [`Limits`] (`Limits::lmtp()`, `::pop3()`, `::imap()`, then override fields):
//!   `line_bytes_max`, `literal_bytes_max`, `message_bytes_max`, `recipients_max`,
//!   `nesting_depth_max`; defaults are the `*_MAX` constants re-exported here.
//! - [`Secret`]: password bytes whose `Debug` prints nothing.
//! - [`sasl`]: `parse_response_line(input, &limits) -> Result<Parsed<SaslResponse>, Rejected<SaslError>>`
//!   for the line after a `+` challenge (POP3 AUTH, IMAP AUTHENTICATE), and
//!   `PlainCredentials::parse(&[u8])` for the PLAIN message.
//! - [`dot_stuffing`]: `stuff(body, &mut out)` and the streaming `Unstuffer`.
//!
//! # LMTP ([`lmtp`])
//!
//! - `parse_command(input, &limits) -> Result<Parsed<lmtp::Command>, Rejected<lmtp::ParseError>>`;
//!   `ParseError::reply()` gives the 5xx reply with its enhanced code.
//! - After `DATA` and a 354 ([`lmtp::Reply::start_data`]): `DataDecoder::new(&limits)`, then
//!   `decoder.decode(chunk, &mut body) -> Result<DataStatus, DataError>` for each chunk read
//!   (all of the chunk is consumed until `Complete { consumed_bytes }`; the rest of that chunk
//!   is the next command). `DataError::TooLarge` comes only once the terminator has been read,
//!   so the session replies 552 per recipient and carries on.
//! - Replies: [`lmtp::Reply`] (`new`, `with_line`, `write_to`, and ready-made ones such as
//!   `lhlo(host, &[Capability])`, `recipient_ok`, `delivered`, `cannot_verify`,
//!   `too_many_recipients`, `message_too_large`). `recipients_max` is counted by the session.
//!
//! # POP3 ([`pop3`])
//!
//! - `parse_command(input, &limits) -> Result<Parsed<pop3::Command>, Rejected<pop3::ParseError>>`.
//! - Replies: [`pop3::Reply`] (`ok`, `error`, `error_with_code`, `stat`, `scan_listing`,
//!   `unique_id_listing`), `write_multiline(status, body, &mut out)` (RETR/TOP, dot-stuffed),
//!   `message_top(message, lines)`, `write_listing`, `write_capabilities`, `write_challenge`.
//!
//! # IMAP ([`imap`])
//!
//! - `parse_command(input, &limits) -> Result<imap::Parsed<imap::Command>, Rejected<imap::TaggedError>>`.
//!   [`imap::Parsed`] adds `NeedsLiteral(LiteralRequest { size, non_synchronizing, data_offset })`:
//!   for a synchronizing literal, send `+ Ready for literal data` once per `data_offset`, then
//!   read more and parse the whole buffer again. Literals above `literal_bytes_max` (APPEND:
//!   `message_bytes_max`) are rejected before their data is read
//!   (`ParseError::LiteralTooLarge`); `TaggedError::write_reply` writes `tag BAD ...`.
//! - `parse_idle_done(input, &limits)` after IDLE; `sasl::parse_response_line` after
//!   `AUTHENTICATE PLAIN` without an initial response.
//! - Values: [`imap::Command`] `{ tag, kind: CommandKind }`, [`imap::SequenceSet`]
//!   (`resolve(largest)`, `iter(largest)`, `contains`, `exceeds`), [`imap::SearchKey`],
//!   [`imap::FetchAttributes`] (`expand()` for ALL/FAST/FULL), [`imap::Flag`],
//!   [`imap::DateTime`] / [`imap::Date`] (Unix time conversions). Mailbox names arrive
//!   decoded from modified UTF-7 with INBOX upper-cased; `encode_mailbox_name` /
//!   `decode_mailbox_name` for the rest.
//! - Responses: `write_tagged`, `write_untagged` (with [`imap::ResponseCode`]),
//!   `write_continuation`, `write_capability`, `write_exists`, `write_recent`, `write_expunge`,
//!   `write_flags`, `write_list`, `write_status`, `write_search`, `write_namespace`,
//!   `write_fetch(sequence_number, &[FetchData], &mut out)`; strings are quoted or sent as
//!   literals as needed.
//! - `imap::envelope`: ENVELOPE and BODYSTRUCTURE text from raw message bytes.

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
    IMAP_LINE_BYTES_MAX, LITERAL_BYTES_MAX, LMTP_LINE_BYTES_MAX, Limits, MESSAGE_BYTES_MAX, NESTING_DEPTH_MAX,
    PATH_BYTES_MAX, POP3_LINE_BYTES_MAX, RECIPIENTS_MAX,
};
pub use line::{LineDiscard, discard_line};
pub use parsed::{Parsed, Rejected};
pub use secret::Secret;
