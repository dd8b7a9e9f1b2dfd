//! mailvault storage engine: encrypted append-only segments, one shard per core.
