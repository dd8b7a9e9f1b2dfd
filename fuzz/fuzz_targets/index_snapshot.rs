//! `Index::decode_snapshot`, the checkpoint body's index decoder, on arbitrary bytes. It reads
//! no further than the input; what it decodes encodes to a snapshot that decodes completely,
//! and that snapshot is a fixed point of decode then encode (compared in a canonical order,
//! since the index keeps hash maps).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_engine::format::{ByteReader, ByteWriter};
use mailvault_engine::index::Index;

/// The index's content as text, every map sorted. The name → id map is left out: with two
/// accounts of one name (which the decoder accepts) it depends on hash-map order.
fn canonical(index: &Index) -> String {
    let mut blobs: Vec<_> = index.blobs().map(|(id, blob)| format!("{id}:{blob:?}")).collect();
    blobs.sort();
    let mut accounts: Vec<_> = index
        .accounts()
        .map(|account| {
            let mut mailbox_ids: Vec<_> = account.mailbox_ids.iter().collect();
            mailbox_ids.sort();
            format!(
                "{} {:?} {} {} {} {} {:?} {:?} {:?} {:?} {:?} {:?}",
                account.id,
                account.name,
                account.created_unix_ms,
                account.next_mailbox_id,
                account.last_uid_validity,
                account.snapshot_record_id,
                account.mailboxes,
                mailbox_ids,
                account.deleted,
                account.password_hash,
                account.app_passwords,
                account.access_log,
            )
        })
        .collect();
    accounts.sort();
    format!("{blobs:?}\n{accounts:?}")
}

fn encode(index: &Index) -> Vec<u8> {
    let mut writer = ByteWriter::new();
    index.encode_snapshot(&mut writer);
    writer.into_inner()
}

fuzz_target!(|input: &[u8]| {
    let mut reader = ByteReader::new(input);
    let Ok(index) = Index::decode_snapshot(&mut reader) else {
        return;
    };
    assert!(reader.position() <= input.len());
    let encoded = encode(&index);
    let mut reader = ByteReader::new(&encoded);
    let again = Index::decode_snapshot(&mut reader).expect("an encoded snapshot decodes");
    assert_eq!(reader.position(), encoded.len(), "an encoded snapshot is read to its end");
    let encoded_again = encode(&again);
    assert_eq!(encoded_again.len(), encoded.len());
    let mut reader = ByteReader::new(&encoded_again);
    let third = Index::decode_snapshot(&mut reader).expect("an encoded snapshot decodes");
    assert_eq!(canonical(&third), canonical(&again), "decode then encode lost or changed state");
});
