//! mailvault protocol frontends: pure protocol codecs in `proto`, sessions over the engine API.
#![forbid(unsafe_code)]

pub mod proto;
pub mod session;
