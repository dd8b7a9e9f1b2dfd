//! Record payloads are standard AES-256-GCM: what the engine seals (`aws-lc-rs`) `RustCrypto`'s
//! `aes-gcm` opens and the reverse, given the data key, the record nonce and the frame header's
//! associated data; a record moved to another place fails to open under either library.
#![allow(clippy::unwrap_used)] // helpers fail the test the way the tests themselves do

mod common;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use common::{TestStore, active_segment_path, frame_spans};
use mailvault_engine::crypto::{RecordCipher, TAG_BYTES, record_nonce};
use mailvault_engine::format::{FRAME_HEADER_BYTES, FrameHeader, Record, RecordKind};
use mailvault_engine::{Flags, INBOX, block_on};
use mailvault_hsm::{Dek, WrappedDek};
use proptest::collection::vec;
use proptest::prelude::*;

fn rustcrypto(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

fn rustcrypto_open(key: &[u8; 32], header: &FrameHeader, sealed: &[u8]) -> Result<Vec<u8>, aes_gcm::Error> {
    let nonce = record_nonce(header.record_id);
    rustcrypto(key).decrypt(Nonce::from_slice(&nonce), Payload { msg: sealed, aad: &header.associated_data() })
}

fn rustcrypto_seal(key: &[u8; 32], header: &FrameHeader, plaintext: &[u8]) -> Vec<u8> {
    let nonce = record_nonce(header.record_id);
    rustcrypto(key)
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &header.associated_data() })
        .unwrap()
}

prop_compose! {
    fn sealed_case()(
        key in any::<[u8; 32]>(),
        kind in 1_u8..=10,
        record_id in any::<u64>(),
        account_id in any::<u64>(),
        mailbox_id in any::<u32>(),
        uid in any::<u32>(),
        plaintext in vec(any::<u8>(), 0..600),
    ) -> ([u8; 32], FrameHeader, Vec<u8>) {
        let payload_length = (plaintext.len() + TAG_BYTES) as u32;
        let header = FrameHeader { kind, flags: 0, record_id, account_id, mailbox_id, uid, payload_length };
        (key, header, plaintext)
    }
}

/// The same header with one associated field changed: the record moved to another place.
fn moved(header: &FrameHeader, field: usize, delta: u64) -> FrameHeader {
    let mut moved = *header;
    match field {
        0 => moved.kind = moved.kind.wrapping_add(delta as u8 | 1),
        1 => moved.record_id = moved.record_id.wrapping_add(delta | 1),
        2 => moved.account_id = moved.account_id.wrapping_add(delta | 1),
        3 => moved.mailbox_id = moved.mailbox_id.wrapping_add(delta as u32 | 1),
        _ => moved.uid = moved.uid.wrapping_add(delta as u32 | 1),
    }
    moved
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn engine_sealed_records_open_with_rustcrypto_and_the_reverse((key, header, plaintext) in sealed_case()) {
        let cipher = RecordCipher::new(&Dek::from_bytes(key));
        let mut sealed = plaintext.clone();
        cipher.seal(&header, &mut sealed);
        prop_assert_eq!(sealed.len(), header.payload_length as usize);
        // Same key, nonce and AAD give the same ciphertext and tag: this is plain AES-256-GCM.
        prop_assert_eq!(&sealed, &rustcrypto_seal(&key, &header, &plaintext));
        prop_assert_eq!(rustcrypto_open(&key, &header, &sealed).unwrap(), plaintext.clone());
        let sealed_elsewhere = rustcrypto_seal(&key, &header, &plaintext);
        prop_assert_eq!(cipher.open(&header, sealed_elsewhere).unwrap(), plaintext);
    }

    /// The shard seals a message body from the request into its batch (`seal_scattered`): at
    /// any split of the payload into head and tail, the frame is that of the whole payload.
    #[test]
    fn sealing_a_payload_in_two_pieces_gives_the_frame_of_the_whole((key, header, plaintext) in sealed_case(), split in any::<prop::sample::Index>()) {
        let cipher = RecordCipher::new(&Dek::from_bytes(key));
        let (head, tail) = plaintext.split_at(split.index(plaintext.len() + 1));
        let mut sealed = head.to_vec();
        sealed.resize(plaintext.len() + TAG_BYTES, 0);
        let (head_in_place, tail_out) = sealed.split_at_mut(head.len());
        cipher.seal_scattered(&header, head_in_place, tail, tail_out);
        prop_assert_eq!(&sealed, &rustcrypto_seal(&key, &header, &plaintext));
    }

    /// A fetch is opened by its caller into a buffer of its own (`open_into`): the plaintext is
    /// RustCrypto's, a record moved elsewhere fails, and either way the payload is left as it
    /// was (so a failure can still be told apart by the frame's checksum).
    #[test]
    fn opening_into_another_buffer_gives_the_plaintext_and_leaves_the_payload(
        (key, header, plaintext) in sealed_case(),
        field in 0_usize..5,
        delta in any::<u64>(),
    ) {
        let cipher = RecordCipher::new(&Dek::from_bytes(key));
        let sealed = rustcrypto_seal(&key, &header, &plaintext);
        let mut opened = vec![0xA5; plaintext.len()];
        prop_assert!(cipher.open_into(&header, &sealed, &mut opened).is_ok());
        prop_assert_eq!(&opened, &plaintext);
        prop_assert!(cipher.open_into(&moved(&header, field, delta), &sealed, &mut opened).is_err());
        prop_assert!(cipher.open_into(&header, &sealed, &mut opened[..plaintext.len().saturating_sub(1)]).is_err() || plaintext.is_empty());
        prop_assert_eq!(&sealed, &rustcrypto_seal(&key, &header, &plaintext));
    }

    #[test]
    fn a_record_moved_to_another_place_or_key_fails_to_open_in_both_libraries(
        (key, header, plaintext) in sealed_case(),
        field in 0_usize..5,
        delta in any::<u64>(),
        other_key in any::<[u8; 32]>(),
    ) {
        let cipher = RecordCipher::new(&Dek::from_bytes(key));
        let mut sealed = plaintext.clone();
        cipher.seal(&header, &mut sealed);
        let elsewhere = moved(&header, field, delta);
        prop_assert!(cipher.open(&elsewhere, sealed.clone()).is_err());
        prop_assert!(rustcrypto_open(&key, &elsewhere, &sealed).is_err());
        if other_key != key {
            prop_assert!(RecordCipher::new(&Dek::from_bytes(other_key)).open(&header, sealed.clone()).is_err());
        }
        // Flags and the payload length are not associated data: commit marking needs no re-encryption.
        let marked = FrameHeader { flags: 3, payload_length: 0, ..header };
        prop_assert_eq!(cipher.open(&marked, sealed).unwrap(), plaintext);
    }
}

/// End to end: every encrypted record in a segment the engine wrote opens with `RustCrypto`, using
/// only the segment's bytes and the HSM (to unwrap the account's key from its `KeyWrapped` record).
#[test]
fn every_record_the_engine_wrote_opens_with_rustcrypto() {
    let store = TestStore::new(1);
    let engine = store.open();
    let account = "compat@example.org";
    let bodies: Vec<Vec<u8>> = (0..5_u8)
        .map(|index| [b"Subject: compat\r\n\r\n".as_slice(), &vec![b'a' + index; 700 * usize::from(index)]].concat())
        .collect();
    block_on(async {
        engine.create_account(account).await.unwrap();
        engine.create_mailbox(account, "Work").await.unwrap();
        for body in &bodies {
            engine.append(account, INBOX, body.clone(), Flags::default(), None).await.unwrap();
        }
        engine.copy(account, INBOX, &[1, 2], "Work").await.unwrap();
        engine.expunge(account, INBOX, &[3]).await.unwrap();
        engine.rename_mailbox(account, "Work", "Archive").await.unwrap();
    });
    drop(engine);

    let segment = std::fs::read(active_segment_path(&store.config.data_dir, 0)).unwrap();
    let payload = |span: &common::FrameSpan| {
        let start = span.offset + FRAME_HEADER_BYTES;
        segment[start..start + span.header.payload_length as usize].to_vec()
    };
    let spans = frame_spans(&segment);
    let key_span = spans.iter().find(|span| span.header.kind == RecordKind::KeyWrapped as u8).unwrap();
    let wrapped = WrappedDek::from_bytes(&payload(key_span)).unwrap();
    let dek = store.token.hsm.session().unwrap().unwrap_dek(&wrapped).unwrap();

    let mut opened_kinds = Vec::new();
    let mut appended_bodies = Vec::new();
    for span in &spans {
        let kind = RecordKind::from_u8(span.header.kind).unwrap();
        if kind.is_clear() {
            continue;
        }
        let plaintext = rustcrypto_open(dek.as_bytes(), &span.header, &payload(span))
            .unwrap_or_else(|_| panic!("{kind:?} record at offset {} does not open", span.offset));
        if let Record::MessageAppended { body, digest, .. } = Record::decode(kind, plaintext).unwrap() {
            assert_eq!(digest, *blake3::hash(&body).as_bytes());
            appended_bodies.push(body);
        }
        opened_kinds.push(kind);
    }
    assert_eq!(appended_bodies, bodies);
    for kind in [
        RecordKind::AccountCreated,
        RecordKind::MailboxCreated,
        RecordKind::MessageAppended,
        RecordKind::MessageCopied,
        RecordKind::MessageExpunged,
        RecordKind::MailboxRenamed,
    ] {
        assert!(opened_kinds.contains(&kind), "no {kind:?} record was checked: {opened_kinds:?}");
    }
}
