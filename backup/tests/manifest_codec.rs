//! The manifest decoders that need no HSM (bytes read from a backup target): the signed
//! envelope (`split_signed`) and the JSON body (`Manifest::parse_body`). Round trips, every
//! truncation is an error, one spelling per manifest, and no input panics. Fuzzed too:
//! `fuzz/fuzz_targets/backup_manifest.rs`. The signature check itself (HSM) is tested in
//! tests/directory.rs.
#![allow(clippy::unwrap_used)]

use mailvault_backup::{
    MANIFEST_FORMAT, Manifest, ManifestError, ManifestFile, ManifestSegment, StoreIdentity, join_signed, split_signed,
};
use mailvault_hsm::{MANIFEST_SIGNATURE_BYTES, ManifestSignature};
use proptest::prelude::*;

fn file(name: &str, size: u64) -> ManifestFile {
    ManifestFile { name: name.into(), size, blake3: hex::encode(blake3::hash(name.as_bytes()).as_bytes()) }
}

fn manifest() -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT.into(),
        created_unix_ms: 1_700_000_000_000,
        store: StoreIdentity { shards: 2, data_dir: "/var/lib/mailvault".into(), hsm_token: "mailvault".into() },
        key_table: file("keytables/ab.keys", 76),
        segments: vec![
            ManifestSegment { shard: 0, segment_id: 1, file: file("segments/shard-000/0000000000000001.seg", 8192) },
            ManifestSegment { shard: 1, segment_id: 4, file: file("segments/shard-001/0000000000000004.seg", 4096) },
        ],
    }
}

fn signature() -> ManifestSignature {
    ManifestSignature::from_bytes([0x5c; MANIFEST_SIGNATURE_BYTES])
}

fn signed(manifest: &Manifest, signature: &ManifestSignature) -> Vec<u8> {
    join_signed(&manifest.to_body().unwrap(), signature)
}

/// Strings as a target might hold them: any Unicode, control characters and newlines
/// included (the body must still be one line).
fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..12).prop_map(|chars| chars.into_iter().collect())
}

fn any_file() -> impl Strategy<Value = ManifestFile> {
    (text(), any::<u64>(), text()).prop_map(|(name, size, blake3)| ManifestFile { name, size, blake3 })
}

/// Any manifest of the current format (field values are not checked by the decoder: the
/// signature vouches for them, and each command checks what it uses).
fn any_manifest() -> impl Strategy<Value = Manifest> {
    let store = (any::<usize>(), text(), text()).prop_map(|(shards, data_dir, hsm_token)| StoreIdentity {
        shards,
        data_dir,
        hsm_token,
    });
    let segment = (any::<u32>(), any::<u64>(), any_file()).prop_map(|(shard, segment_id, file)| ManifestSegment {
        shard,
        segment_id,
        file,
    });
    (any::<i64>(), store, any_file(), proptest::collection::vec(segment, 0..6)).prop_map(
        |(created_unix_ms, store, key_table, segments)| Manifest {
            format: MANIFEST_FORMAT.into(),
            created_unix_ms,
            store,
            key_table,
            segments,
        },
    )
}

fn any_signature() -> impl Strategy<Value = ManifestSignature> {
    any::<[u8; MANIFEST_SIGNATURE_BYTES]>().prop_map(ManifestSignature::from_bytes)
}

#[test]
fn a_signed_manifest_splits_and_parses() {
    let bytes = signed(&manifest(), &signature());
    let split = split_signed(&bytes).unwrap();
    assert_eq!(split.signature, signature());
    assert_eq!(Manifest::parse_body(split.body).unwrap(), manifest());
    assert!(bytes.ends_with(format!("\nsignature {}\n", "5c".repeat(32)).as_bytes()));
}

#[test]
fn envelope_damage_is_named() {
    let body = manifest().to_body().unwrap();
    let with_line = |line: &str| format!("{body}\n{line}");
    let hex = "5c".repeat(MANIFEST_SIGNATURE_BYTES);
    assert!(split_signed(with_line(&format!("signature {hex}\n")).as_bytes()).is_ok());
    let mut not_utf8 = with_line(&format!("signature {hex}\n")).into_bytes();
    not_utf8[3] = 0xff;
    assert_eq!(split_signed(&not_utf8), Err(ManifestError::NotUtf8));
    assert_eq!(split_signed(body.as_bytes()), Err(ManifestError::NoSignatureLine));
    let cases = [
        (format!("signature:{hex}\n"), ManifestError::MalformedSignatureLine),
        (format!("signature {hex}"), ManifestError::MalformedSignatureLine),
        (format!("Signature {hex}\n"), ManifestError::MalformedSignatureLine),
        (format!("signature {hex}\n\n"), ManifestError::SignatureNotHex),
        (format!("signature {hex}\r\n"), ManifestError::SignatureNotHex),
        (format!("signature  {hex}\n"), ManifestError::SignatureNotHex),
        (format!("signature {}\n", hex.to_uppercase()), ManifestError::SignatureNotHex),
        (format!("signature {}\n", &hex[1..]), ManifestError::SignatureNotHex),
        (format!("signature {}\n", &hex[2..]), ManifestError::SignatureLength),
        (format!("signature {hex}5c\n"), ManifestError::SignatureLength),
        ("signature \n".to_owned(), ManifestError::SignatureLength),
    ];
    for (line, expected) in cases {
        assert_eq!(split_signed(with_line(&line).as_bytes()), Err(expected), "{line:?}");
    }
}

#[test]
fn a_body_of_another_format_or_shape_is_refused() {
    let mut other = manifest();
    other.format = "mailvault-backup 2".into();
    assert_eq!(
        Manifest::parse_body(&other.to_body().unwrap()),
        Err(ManifestError::UnknownFormat("mailvault-backup 2".into()))
    );
    for body in ["", "{}", "[]", "null", "{\"format\":\"mailvault-backup 1\"}"] {
        assert!(matches!(Manifest::parse_body(body), Err(ManifestError::MalformedBody(_))), "{body:?}");
    }
    let body = manifest().to_body().unwrap();
    let duplicated = body.replacen("{\"format\"", "{\"created_unix_ms\":1,\"format\"", 1);
    assert!(matches!(Manifest::parse_body(&duplicated), Err(ManifestError::MalformedBody(_))), "duplicate field");
    let negative_size = body.replacen("\"size\":76", "\"size\":-76", 1);
    assert!(matches!(Manifest::parse_body(&negative_size), Err(ManifestError::MalformedBody(_))));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_manifest_round_trips(original in any_manifest(), signature in any_signature()) {
        let body = original.to_body().unwrap();
        prop_assert!(!body.contains('\n'), "the body is one line");
        let bytes = join_signed(&body, &signature);
        let split = split_signed(&bytes).unwrap();
        prop_assert_eq!(split.body, body.as_str());
        prop_assert_eq!(&split.signature, &signature);
        prop_assert_eq!(Manifest::parse_body(split.body).unwrap(), original);
    }

    #[test]
    fn every_truncation_is_an_error(original in any_manifest(), signature in any_signature()) {
        let body = original.to_body().unwrap();
        let bytes = join_signed(&body, &signature);
        for length in 0..bytes.len() {
            prop_assert!(split_signed(&bytes[..length]).is_err(), "envelope cut at {}", length);
        }
        for (length, _) in body.char_indices() {
            prop_assert!(Manifest::parse_body(&body[..length]).is_err(), "body cut at {}", length);
        }
    }

    /// One spelling per envelope: whatever splits joins back to the same bytes.
    #[test]
    fn whatever_splits_joins_to_its_bytes(
        original in any_manifest(),
        position in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = signed(&original, &signature());
        let position = position % bytes.len();
        bytes[position] = byte;
        if let Ok(split) = split_signed(&bytes) {
            prop_assert_eq!(&join_signed(split.body, &split.signature), &bytes);
            let _ = Manifest::parse_body(split.body);
        }
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(split) = split_signed(&bytes) {
            let _ = Manifest::parse_body(split.body);
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = Manifest::parse_body(text);
        }
    }

    /// A parsed body is a fixed point: printing and parsing it again gives the same manifest.
    #[test]
    fn a_damaged_body_parses_to_a_fixed_point_or_not_at_all(
        original in any_manifest(),
        position in any::<usize>(),
        replacement in any::<char>(),
    ) {
        let body = original.to_body().unwrap();
        let mut chars: Vec<char> = body.chars().collect();
        let position = position % chars.len();
        chars[position] = replacement;
        let damaged: String = chars.into_iter().collect();
        if let Ok(parsed) = Manifest::parse_body(&damaged) {
            prop_assert_eq!(Manifest::parse_body(&parsed.to_body().unwrap()).unwrap(), parsed);
        }
    }
}
