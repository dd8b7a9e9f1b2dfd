//! mailvault protocol frontends: pure protocol codecs in `proto`, sessions over the engine API
//! in `session`, listeners and TLS in `net`, the operator's admin socket in `admin`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod net;
pub mod proto;
pub mod session;
