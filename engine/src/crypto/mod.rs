//! Record encryption: AES-256-GCM (aws-lc-rs) under each account's data key.

mod key_table;
mod record_cipher;

pub use key_table::{KeyTable, KeyTableError};
pub use record_cipher::{RecordCipher, RecordOpenError, TAG_BYTES, record_nonce};
