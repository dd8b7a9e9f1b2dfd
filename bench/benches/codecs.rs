//! Criterion benches of the CPU work under every append and fetch, without the disk: the frame
//! codec (encode, decode with its CRC check, and a fetch's decode that leaves the payload to the
//! AEAD tag), the record codec, CRC32C, AES-256-GCM seal and open under a record's header
//! (aws-lc-rs, as the engine uses it), BLAKE3 digests, and index lookups (account by name,
//! mailbox by name, message by uid, body location by record id), in many small INBOXes and on
//! random uids in a few large ones.
//!
//! Sizes: 4 KiB (a typical small mail), 64 KiB (a mail with an attachment) and 1 MiB (the
//! load test's largest). Throughput is in bytes, so criterion prints GB/s per core.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use mailvault_engine::crypto::{RecordCipher, TAG_BYTES};
use mailvault_engine::format::{
    CrcSeed, FRAME_FLAG_COMMIT_END, FrameDecode, FrameHeader, Record, RecordKind, decode_frame, decode_frame_for_aead,
    encode_frame, frame_encoded_bytes,
};
use mailvault_engine::index::{Index, RecordLocation};
use mailvault_engine::{Flags, INBOX};
use mailvault_hsm::Dek;

/// A format 6 segment's frames: their CRCs start from the segment's seed.
const SEED: CrcSeed = CrcSeed::of_segment(7);

const PAYLOAD_SIZES: [usize; 3] = [4 * 1024, 64 * 1024, 1024 * 1024];
/// The index the lookups run against: accounts × messages in each INBOX.
const INDEX_ACCOUNTS: u64 = 1_000;
const INDEX_MESSAGES_PER_ACCOUNT: u32 = 200;
/// The operator bench's random-read set: 4 accounts, 32,768 messages each.
const LARGE_INDEX_ACCOUNTS: u64 = 4;
const LARGE_INDEX_MESSAGES_PER_ACCOUNT: u32 = 32_768;

fn size_label(bytes: usize) -> String {
    if bytes >= 1024 * 1024 { format!("{}MiB", bytes / (1024 * 1024)) } else { format!("{}KiB", bytes / 1024) }
}

/// Printable filler, like mail; the codecs do not care, but compressible-looking data keeps
/// nobody wondering.
fn payload(bytes: usize) -> Vec<u8> {
    (0..bytes).map(|index| b"abcdefghijklmnopqrstuvwxyz0123456789 \r\n"[index % 39]).collect()
}

fn header(payload_length: usize) -> FrameHeader {
    FrameHeader {
        kind: RecordKind::MessageAppended as u8,
        flags: FRAME_FLAG_COMMIT_END,
        record_id: 42,
        account_id: 7,
        mailbox_id: 1,
        uid: 1000,
        payload_length: payload_length as u32,
    }
}

fn frames(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("frame");
    for size in PAYLOAD_SIZES {
        let body = payload(size);
        let header = header(size);
        group.throughput(Throughput::Bytes(size as u64));
        let mut out = Vec::with_capacity(frame_encoded_bytes(size));
        group.bench_with_input(BenchmarkId::new("encode", size_label(size)), &body, |bencher, body| {
            bencher.iter(|| {
                out.clear();
                encode_frame(&header, black_box(body), SEED, &mut out);
                black_box(out.len())
            });
        });
        out.clear();
        encode_frame(&header, &body, SEED, &mut out);
        group.bench_with_input(BenchmarkId::new("decode", size_label(size)), &out, |bencher, encoded| {
            bencher.iter(|| match decode_frame(black_box(encoded), SEED) {
                Ok(FrameDecode::Frame(frame)) => black_box(frame.encoded_bytes),
                other => panic!("the bench's own frame did not decode: {other:?}"),
            });
        });
        group.bench_with_input(BenchmarkId::new("decode_for_aead", size_label(size)), &out, |bencher, encoded| {
            bencher.iter(|| match decode_frame_for_aead(black_box(encoded)) {
                Ok(FrameDecode::Frame(frame)) => black_box(frame.encoded_bytes),
                other => panic!("the bench's own frame did not decode: {other:?}"),
            });
        });
    }
    group.finish();
}

fn records(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("record");
    for size in PAYLOAD_SIZES {
        let record = Record::MessageAppended {
            internal_date_unix_ms: 1_700_000_000_000,
            flags: Flags::default(),
            digest: *blake3::hash(&payload(size)).as_bytes(),
            body: payload(size),
        };
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("encode_message", size_label(size)), &record, |bencher, record| {
            bencher.iter(|| black_box(record.encode()));
        });
        let encoded = record.encode();
        group.bench_with_input(BenchmarkId::new("decode_message", size_label(size)), &encoded, |bencher, encoded| {
            // Decoding takes the payload by value (it reuses the buffer as the body); the clone
            // is part of what a fetch pays too, since the cipher hands back a fresh Vec.
            bencher.iter(|| match Record::decode(RecordKind::MessageAppended, black_box(encoded.clone())) {
                Ok(record) => black_box(record),
                Err(error) => panic!("the bench's own record did not decode: {error}"),
            });
        });
    }
    group.finish();
}

fn crc32c(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("crc32c");
    for size in PAYLOAD_SIZES {
        let data = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size_label(size)), &data, |bencher, data| {
            bencher.iter(|| black_box(crc32c::crc32c(black_box(data))));
        });
    }
    group.finish();
}

fn aes_gcm(criterion: &mut Criterion) {
    let cipher = RecordCipher::new(&Dek::from_bytes([0x5a; 32]));
    let mut group = criterion.benchmark_group("aes_256_gcm");
    for size in PAYLOAD_SIZES {
        let plaintext = payload(size);
        let header = header(size + TAG_BYTES);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", size_label(size)), &plaintext, |bencher, plaintext| {
            // The copy into a fresh buffer is what the engine does too (seal is in place).
            bencher.iter(|| {
                let mut buffer = Vec::with_capacity(plaintext.len() + TAG_BYTES);
                buffer.extend_from_slice(plaintext);
                cipher.seal(&header, &mut buffer);
                black_box(buffer)
            });
        });
        let mut sealed = plaintext.clone();
        cipher.seal(&header, &mut sealed);
        group.bench_with_input(BenchmarkId::new("open", size_label(size)), &sealed, |bencher, sealed| {
            bencher.iter(|| match cipher.open(&header, black_box(sealed.clone())) {
                Ok(plaintext) => black_box(plaintext),
                Err(error) => panic!("the bench's own record did not open: {error}"),
            });
        });
    }
    group.finish();
}

fn blake3_digest(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("blake3");
    for size in PAYLOAD_SIZES {
        let data = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size_label(size)), &data, |bencher, data| {
            bencher.iter(|| black_box(blake3::hash(black_box(data))));
        });
    }
    group.finish();
}

fn account_name(account: u64) -> String {
    format!("user{account:06}@example.org")
}

/// An index as replay builds it: `accounts` accounts, each with an INBOX of
/// `messages_per_account` messages (bodies empty: the index keeps only sizes).
fn build_index(accounts: u64, messages_per_account: u32) -> Index {
    let mut index = Index::default();
    let mut record_id = 0_u64;
    let mut apply = |index: &mut Index, account_id: u64, mailbox_id: u32, uid: u32, record: Record| {
        record_id += 1;
        let header = FrameHeader {
            kind: record.kind() as u8,
            flags: FRAME_FLAG_COMMIT_END,
            record_id,
            account_id,
            mailbox_id,
            uid,
            payload_length: 0,
        };
        let location = RecordLocation { segment_id: 1, offset: record_id * 4096, frame_bytes: 4096 };
        if let Err(error) = index.apply(&header, record, location) {
            panic!("building the bench index: {error}");
        }
    };
    for account in 1..=accounts {
        apply(&mut index, account, 0, 0, Record::AccountCreated { name: account_name(account), created_unix_ms: 0 });
        apply(&mut index, account, 1, 0, Record::MailboxCreated { name: INBOX.to_owned(), uid_validity: 1 });
        for uid in 1..=messages_per_account {
            let record = Record::MessageAppended {
                internal_date_unix_ms: 0,
                flags: Flags::default(),
                digest: [0; 32],
                body: Vec::new(),
            };
            apply(&mut index, account, 1, uid, record);
        }
    }
    index
}

fn index_lookups(criterion: &mut Criterion) {
    let index = build_index(INDEX_ACCOUNTS, INDEX_MESSAGES_PER_ACCOUNT);
    let names: Vec<String> = (1..=INDEX_ACCOUNTS).map(account_name).collect();
    let mut group =
        criterion.benchmark_group(format!("index/{INDEX_ACCOUNTS}_accounts_x_{INDEX_MESSAGES_PER_ACCOUNT}_messages"));
    group.throughput(Throughput::Elements(1));
    let mut next = 0_usize;
    group.bench_function("account_by_name", |bencher| {
        bencher.iter(|| {
            next = (next + 7919) % names.len();
            black_box(index.account_by_name(black_box(&names[next])).map(|account| account.id))
        });
    });
    // What a fetch does before any IO: account, mailbox, message, where its body lives.
    let mut uid = 0_u32;
    group.bench_function("fetch_path", |bencher| {
        bencher.iter(|| {
            next = (next + 7919) % names.len();
            uid = uid % INDEX_MESSAGES_PER_ACCOUNT + 1;
            black_box(fetch_path(&index, &names[next], uid))
        });
    });
    group.finish();

    // The operator bench's read set: a few large INBOXes, random uids (cache misses).
    let index = build_index(LARGE_INDEX_ACCOUNTS, LARGE_INDEX_MESSAGES_PER_ACCOUNT);
    let names: Vec<String> = (1..=LARGE_INDEX_ACCOUNTS).map(account_name).collect();
    let mut group = criterion.benchmark_group(format!(
        "index/{LARGE_INDEX_ACCOUNTS}_accounts_x_{LARGE_INDEX_MESSAGES_PER_ACCOUNT}_messages"
    ));
    group.throughput(Throughput::Elements(1));
    let mut random = 0x9e37_79b9_7f4a_7c15_u64;
    group.bench_function("fetch_path_random_uid", |bencher| {
        bencher.iter(|| {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            let account = &names[(random % LARGE_INDEX_ACCOUNTS) as usize];
            let uid = ((random >> 32) % u64::from(LARGE_INDEX_MESSAGES_PER_ACCOUNT)) as u32 + 1;
            black_box(fetch_path(&index, account, uid))
        });
    });
    group.finish();
}

/// Compaction's usage pass (which bodies are still needed, and their bytes per segment), which
/// the shard runs on its own thread: its time per message is how long a shard of a given size
/// stops serving for each pass (a victim search after a release, the idle timer, `stats`).
fn usage_pass(criterion: &mut Criterion) {
    // Two million messages: larger than the caches, as a production shard's index is.
    for (accounts, messages_per_account) in [(INDEX_ACCOUNTS, INDEX_MESSAGES_PER_ACCOUNT), (2_000, 1_000)] {
        let index = build_index(accounts, messages_per_account);
        let mut group =
            criterion.benchmark_group(format!("index/{accounts}_accounts_x_{messages_per_account}_messages"));
        group.throughput(Throughput::Elements(accounts * u64::from(messages_per_account)));
        group.bench_function("usage_pass", |bencher| {
            bencher.iter(|| black_box(index.segment_usage(&index.blob_usage(0, 0))).len());
        });
        // Into a buffer sized by the last encoding, in huge pages, as a checkpoint's.
        let mut last_length = 0;
        group.bench_function("encode_snapshot", |bencher| {
            bencher.iter(|| {
                let storage = mailvault_engine::io::vec_in_huge_pages(last_length + last_length / 8);
                let mut writer = mailvault_engine::format::ByteWriter::appending_to(storage);
                index.encode_snapshot(&mut writer);
                last_length = writer.into_inner().len();
                black_box(last_length)
            });
        });
        // A checkpoint's AES-GCM seal of that body: since session 33 done on another thread,
        // no longer part of the shard's wait (sealed over and over in place here).
        let mut writer = mailvault_engine::format::ByteWriter::new();
        index.encode_snapshot(&mut writer);
        let mut body = writer.into_inner();
        let cipher = RecordCipher::new(&Dek::from_bytes([0x5a; 32]));
        group.bench_function("seal_snapshot", |bencher| {
            bencher.iter(|| black_box(cipher.seal_with([0; 12], b"checkpoint header", &mut body)));
        });
        group.finish();
    }
}

/// Account, INBOX, message, where its body lives: the offset a fetch reads.
fn fetch_path(index: &Index, account: &str, uid: u32) -> Option<u64> {
    index
        .account_by_name(black_box(account))
        .and_then(|account| account.mailbox(INBOX))
        .and_then(|mailbox| mailbox.messages.get(black_box(uid)))
        .and_then(|entry| index.body_location(entry))
        .map(|location| location.offset)
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .configure_from_args();
    frames(&mut criterion);
    records(&mut criterion);
    crc32c(&mut criterion);
    aes_gcm(&mut criterion);
    blake3_digest(&mut criterion);
    index_lookups(&mut criterion);
    usage_pass(&mut criterion);
    criterion.final_summary();
}
