//! Load generator over the real protocols (issue 7): delivers a deterministic corpus over LMTP,
//! reads it back over POP3 and IMAP, checks every byte, and reports throughput, latency, errors
//! and server CPU. It speaks only the standard protocols, so it drives Dovecot as well.

pub mod accounts;
pub mod connection;
pub mod corpus;
pub mod cpu;
pub mod deliver;
pub mod endpoint;
pub mod error;
pub mod imap;
pub mod latency;
pub mod lmtp;
pub mod phase;
pub mod plan;
pub mod pop3;
pub mod report;
pub mod retrieve;
pub mod rng;
pub mod run;
pub mod sizes;
pub mod text;
pub mod tls;
pub mod verify;
pub use error::ClientError;
