//! Shared pieces of the fuzz targets: a byte cursor for structured inputs, an in-memory
//! `StorageFile`, the segment-image recipe (decoded by `segment_scan`, written by the seed
//! generator), and a checker for the IMAP syntax the server writes.

pub mod cursor;
pub mod imap_syntax;
pub mod memory_file;
pub mod segment_recipe;
