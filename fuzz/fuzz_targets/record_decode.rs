//! `Record::decode` for every `RecordKind`: byte 0 picks the kind, the rest is the payload. A
//! decoded record re-encodes to exactly its payload and stays within the on-disk limits.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mailvault_engine::format::{Record, RecordKind};

/// Every kind this build knows, found through `from_u8`, so that new kinds are fuzzed too.
fn kinds() -> &'static [RecordKind] {
    static KINDS: OnceLock<Vec<RecordKind>> = OnceLock::new();
    KINDS.get_or_init(|| (0..=u8::MAX).filter_map(RecordKind::from_u8).collect())
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, payload)) = input.split_first() else {
        return;
    };
    // The wire value where it names a kind, so seeds can use the real kind byte.
    let kinds = kinds();
    let kind = RecordKind::from_u8(selector).unwrap_or(kinds[usize::from(selector) % kinds.len()]);
    assert_eq!(RecordKind::from_u8(kind as u8), Some(kind));
    let Ok(record) = Record::decode(kind, payload.to_vec()) else {
        return;
    };
    assert_eq!(record.kind(), kind);
    assert_eq!(record.encode(), payload, "decode then encode changed the {kind:?} payload");
    match &record {
        Record::MessageAppended { flags, .. }
        | Record::FlagsChanged { flags }
        | Record::MessageCopied { flags, .. }
        | Record::MessageMoved { flags, .. }
        | Record::MessageRestored { flags, .. } => assert!(flags.is_valid(), "decoded invalid flags {flags:?}"),
        Record::AccessRecorded { event } => assert!(event.is_valid(), "decoded an invalid access event"),
        _ => {}
    }
});
