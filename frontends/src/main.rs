//! The `mailvault` command: server and operator tools.
#![forbid(unsafe_code)]

fn main() {}
