//! Writes the seed corpora, `<dir>/<target>/<name>`, from the crates' own encoders: small valid
//! inputs from which the fuzzer reaches past the checksums and keywords quickly.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml -p mailvault-fuzz-seeds -- fuzz/corpus`

use std::path::{Path, PathBuf};

use mailvault_backup::{
    KeyTable, MANIFEST_FORMAT, Manifest, ManifestFile, ManifestSegment, StoreIdentity, join_signed,
};
use mailvault_engine::ScrubPass;
use mailvault_engine::format::{
    AccessEvent, ByteWriter, CrcSeed, FRAME_FLAG_COMMIT_END, FRAME_FLAG_COMMIT_START, Flags, ForcedCompaction,
    FrameHeader, MessageReference, Record, ScrubState, SegmentHeader, encode_frame,
};
use mailvault_engine::index::{Index, RecordLocation};
use mailvault_frontends::admin::{AdminCommand, AdminReply, wire};
use mailvault_frontends::proto::imap::encode_mailbox_name;
use mailvault_frontends::proto::lmtp::{self, BodyType, ForwardPath, MailParameters, ReversePath};
use mailvault_frontends::proto::sasl::{self, PlainCredentials, SaslResponse};
use mailvault_frontends::proto::{Secret, dot_stuffing, pop3};
use mailvault_fuzz::segment_recipe::{
    OPTION_CHECKPOINT, OPTION_FOOTER, OPTION_IS_LAST, OPTION_ZERO_TAIL, RecipeWriter,
};
use mailvault_hsm::{ManifestSignature, SealedCredential, WrappedDek};

struct Corpus {
    root: PathBuf,
    count: usize,
}

impl Corpus {
    fn add(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let directory = self.root.join(target);
        std::fs::create_dir_all(&directory).expect("create corpus directory");
        std::fs::write(directory.join(name), bytes).expect("write seed");
        self.count += 1;
    }
}

fn flags() -> Flags {
    Flags { system: Flags::SEEN | Flags::FLAGGED, keywords: vec!["$Forwarded".into(), "work".into()] }
}

fn reference() -> MessageReference {
    MessageReference { blob_record_id: 5, size: 42, internal_date_unix_ms: 1_700_000_000_000, digest: [7; 32] }
}

fn event() -> AccessEvent {
    AccessEvent {
        at_unix_ms: 1_700_000_000_000,
        remote_ip: "192.0.2.1".into(),
        protocol: "imap".into(),
        method: "password".into(),
        success: true,
    }
}

const MESSAGE: &[u8] =
    b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello\r\n.dot\r\n";

/// One record of every kind, each with its frame header fields.
fn records() -> Vec<(&'static str, Record)> {
    vec![
        (
            "account_created",
            Record::AccountCreated { name: "alice@example.com".into(), created_unix_ms: 1_700_000_000_000 },
        ),
        ("mailbox_created", Record::MailboxCreated { name: "INBOX".into(), uid_validity: 1 }),
        ("mailbox_renamed", Record::MailboxRenamed { name: "Archive/2024".into() }),
        ("mailbox_deleted", Record::MailboxDeleted { at_unix_ms: 1_700_000_000_500 }),
        (
            "message_appended",
            Record::MessageAppended {
                internal_date_unix_ms: 1_700_000_000_000,
                flags: flags(),
                digest: *blake3::hash(MESSAGE).as_bytes(),
                body: MESSAGE.to_vec(),
            },
        ),
        ("flags_changed", Record::FlagsChanged { flags: flags() }),
        ("message_copied", Record::MessageCopied { message: reference(), flags: Flags::default() }),
        (
            "message_moved",
            Record::MessageMoved { source_mailbox_id: 1, source_uid: 3, message: reference(), flags: flags() },
        ),
        ("message_expunged", Record::MessageExpunged { at_unix_ms: 1_700_000_001_000 }),
        (
            "message_restored",
            Record::MessageRestored { deleted_mailbox_id: 2, deleted_uid: 9, message: reference(), flags: flags() },
        ),
        (
            "key_wrapped",
            Record::KeyWrapped { wrapped_key: WrappedDek::new(1, vec![0xa5; 40]).expect("wrapped").to_bytes() },
        ),
        ("record_id_floor", Record::RecordIdFloor),
        ("password_set", Record::PasswordSet { password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into() }),
        (
            "app_password_added",
            Record::AppPasswordAdded {
                label: "phone".into(),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$eA$eQ".into(),
            },
        ),
        ("app_passwords_revoked", Record::AppPasswordsRevoked { at_unix_ms: 1_700_000_002_000 }),
        ("access_recorded", Record::AccessRecorded { event: event() }),
        ("account_snapshot", Record::AccountSnapshot { encoded: account_snapshot(1) }),
        ("account_snapshot_part", Record::AccountSnapshotPart { piece: account_snapshot(1)[..24].to_vec() }),
        ("segment_sealed", Record::SegmentSealed { record_count: 3, records_end: 4096 + 512, digest: [1; 32] }),
    ]
}

fn frame(record: &Record, flags: u8, record_id: u64) -> Vec<u8> {
    let payload = record.encode();
    let header = FrameHeader {
        kind: record.kind() as u8,
        flags,
        record_id,
        account_id: 1,
        mailbox_id: 1,
        uid: record_id as u32,
        payload_length: payload.len() as u32,
    };
    let mut out = Vec::new();
    // `frame_decode` reads its input as a format 5 segment's frames (and writes each into a
    // format 6 segment itself).
    encode_frame(&header, &payload, CrcSeed::UNSEEDED, &mut out);
    out
}

fn engine_seeds(corpus: &mut Corpus) {
    let commit = FRAME_FLAG_COMMIT_START | FRAME_FLAG_COMMIT_END;
    for (index, (name, record)) in records().into_iter().enumerate() {
        let mut payload = vec![record.kind() as u8];
        payload.extend_from_slice(&record.encode());
        corpus.add("record_decode", name, &payload);
        if index % 3 == 0 {
            corpus.add("frame_decode", name, &frame(&record, commit, index as u64 + 1));
        }
    }
    let appended = &records()[4].1;
    corpus.add("frame_decode", "start_only", &frame(appended, FRAME_FLAG_COMMIT_START, 9));
    let mut two = frame(appended, FRAME_FLAG_COMMIT_START, 10);
    two.extend_from_slice(&frame(&records()[5].1, FRAME_FLAG_COMMIT_END, 11));
    corpus.add("frame_decode", "two_frames", &two);
    let mut cut = frame(appended, commit, 12);
    cut.truncate(cut.len() - 9);
    corpus.add("frame_decode", "cut_short", &cut);
    corpus.add("frame_decode", "end_of_log", &[0; 48]);

    for (name, segment_id) in [("first", 1), ("later", 123_456)] {
        let header = SegmentHeader::new(1, segment_id, 1_700_000_000_000);
        corpus.add("segment_header", name, &header.encode());
    }
    corpus.add("segment_header", "padded", &[SegmentHeader::new(0, 7, 0).encode().as_slice(), &[0; 64]].concat());

    corpus.add("index_snapshot", "empty", &[0; 8]);
    corpus.add("index_snapshot", "accounts", &snapshot());
    corpus.add("account_snapshot", "alice", &account_snapshot(1));
    corpus.add("account_snapshot", "bob", &account_snapshot(2));
    corpus.add("scrub_state", "no-pass-yet", ScrubState::default().encode().as_bytes());
    let damaged = ScrubState {
        pass_started_unix_ms: Some(1_764_979_200_000),
        next_segment: 12,
        pass_through: 40,
        last_pass: Some(ScrubPass { started_unix_ms: 1_764_374_400_000, finished_unix_ms: 1_764_460_800_000 }),
        damaged: [(7, "segment 7 is corrupt at offset 1048576: frame checksum mismatch".to_owned())].into(),
    };
    corpus.add("scrub_state", "sample-state", damaged.encode().as_bytes());
    let forced = ForcedCompaction { segments: [3, 12, 40].into(), spares_withheld: true };
    corpus.add("forced_compaction", "prune", forced.encode().as_bytes());

    segment_seeds(corpus);
}

/// An index built by applying real records: two accounts with mailboxes, messages, an
/// expunged message and credentials.
fn seed_index() -> Index {
    let mut index = Index::default();
    let mut record_id = 0;
    let mut apply = |index: &mut Index, account_id: u64, mailbox_id: u32, uid: u32, record: Record| {
        record_id += 1;
        let header = FrameHeader {
            kind: record.kind() as u8,
            flags: 0,
            record_id,
            account_id,
            mailbox_id,
            uid,
            payload_length: 0,
        };
        let location = RecordLocation { segment_id: 1, offset: 4096 + 256 * record_id, frame_bytes: 256 };
        index.apply(&header, record, location).expect("apply seed record");
    };
    for (account_id, name) in [(1, "alice@example.com"), (2, "bob@example.org")] {
        apply(&mut index, account_id, 0, 0, Record::AccountCreated { name: name.into(), created_unix_ms: 1 });
        apply(&mut index, account_id, 1, 0, Record::MailboxCreated { name: "INBOX".into(), uid_validity: 1 });
        apply(&mut index, account_id, 2, 0, Record::MailboxCreated { name: "Sent".into(), uid_validity: 2 });
        for uid in 1..=3 {
            let body = MESSAGE.to_vec();
            let digest = *blake3::hash(&body).as_bytes();
            let record = Record::MessageAppended { internal_date_unix_ms: 5, flags: flags(), digest, body };
            apply(&mut index, account_id, 1, uid, record);
        }
        apply(&mut index, account_id, 1, 2, Record::FlagsChanged { flags: Flags::default() });
        apply(&mut index, account_id, 1, 3, Record::MessageExpunged { at_unix_ms: 9 });
        apply(&mut index, account_id, 0, 0, Record::PasswordSet { password_hash: "$argon2id$hash".into() });
        apply(
            &mut index,
            account_id,
            0,
            0,
            Record::AppPasswordAdded { label: "laptop".into(), password_hash: "$h".into() },
        );
        apply(&mut index, account_id, 0, 0, Record::AccessRecorded { event: event() });
    }
    index
}

fn snapshot() -> Vec<u8> {
    let mut writer = ByteWriter::new();
    seed_index().encode_snapshot(&mut writer);
    writer.into_inner()
}

fn account_snapshot(account_id: u64) -> Vec<u8> {
    seed_index().encode_account_snapshot(account_id, |_| true).expect("seed account exists")
}

fn segment_seeds(corpus: &mut Corpus) {
    let payloads: Vec<Vec<u8>> = records().iter().map(|(_, record)| record.encode()).collect();
    let small = |index: usize| payloads[index].as_slice();
    let three_commits = |options: u8| {
        RecipeWriter::new(options)
            .frame(0, true, true, small(0))
            .frame(1, true, false, small(1))
            .frame(4, false, true, small(4))
            .frame(5, true, true, small(5))
    };
    let seeds = [
        ("active_three_commits", three_commits(OPTION_IS_LAST)),
        ("active_preallocated", three_commits(OPTION_IS_LAST | OPTION_ZERO_TAIL)),
        ("sealed", three_commits(OPTION_FOOTER)),
        ("sealed_untrimmed", three_commits(OPTION_FOOTER | OPTION_ZERO_TAIL)),
        ("sealed_last", three_commits(OPTION_IS_LAST | OPTION_FOOTER)),
        ("not_last_no_footer", three_commits(0)),
        ("checkpoint_after_first", three_commits(OPTION_IS_LAST | OPTION_CHECKPOINT | (1 << 4))),
        ("checkpoint_sealed", three_commits(OPTION_FOOTER | OPTION_CHECKPOINT)),
        ("torn_last_commit", three_commits(OPTION_IS_LAST | OPTION_ZERO_TAIL).frame(6, true, false, small(6))),
        ("flip_in_last_commit", three_commits(OPTION_IS_LAST).flip(4096 + 400, 0x20)),
        ("flip_before_later_commit", three_commits(OPTION_IS_LAST).flip(4096 + 50, 0x01)),
        ("flip_in_sealed", three_commits(OPTION_FOOTER).flip(4096 + 70, 0x80)),
        ("flip_in_header", three_commits(OPTION_IS_LAST).flip(20, 0x04)),
        (
            "long_frames_across_blocks",
            RecipeWriter::new(OPTION_IS_LAST | OPTION_ZERO_TAIL)
                .long_frame(4, true, false, 70)
                .long_frame(4, false, true, 40)
                .frame(5, true, true, small(5)),
        ),
        ("garbage_tail", three_commits(OPTION_IS_LAST).garbage(b"MVRF\x10\x00\x00\x00garbage")),
        (
            "reused_file_earlier_frames",
            three_commits(OPTION_IS_LAST).earlier_frame(2, false, small(2)).earlier_frame(3, true, small(3)),
        ),
        (
            "reused_file_block_gap_then_earlier_frame",
            three_commits(OPTION_IS_LAST).block_gap().earlier_frame(7, false, small(7)),
        ),
        ("zero_gap_then_commit", three_commits(OPTION_IS_LAST).zeroes(4).frame(7, true, true, small(7))),
        ("cut_inside_frame", three_commits(OPTION_IS_LAST).cut(13)),
        ("block_gap_then_commit", three_commits(OPTION_IS_LAST).block_gap().frame(7, true, true, small(7))),
        ("block_gap_then_footer", three_commits(OPTION_FOOTER | OPTION_ZERO_TAIL).block_gap()),
        (
            "flip_in_block_gap",
            three_commits(OPTION_IS_LAST).block_gap().frame(7, true, true, small(7)).flip(4096 + 4000, 0x10),
        ),
        (
            "block_gap_inside_commit",
            RecipeWriter::new(OPTION_IS_LAST).frame(1, true, false, small(1)).block_gap().frame(
                4,
                false,
                true,
                small(4),
            ),
        ),
    ];
    for (name, recipe) in seeds {
        corpus.add("segment_scan", name, &recipe.into_bytes());
    }
}

fn hsm_seeds(corpus: &mut Corpus) {
    corpus.add("hsm_blobs", "wrapped_dek", &WrappedDek::new(3, vec![0x5a; 40]).expect("wrapped").to_bytes());
    let mut sealed = 2_u32.to_le_bytes().to_vec();
    sealed.extend_from_slice(&[9; 12]);
    sealed.extend_from_slice(&20_u32.to_le_bytes());
    sealed.extend_from_slice(&[0xc3; 20]);
    assert!(SealedCredential::from_bytes(&sealed).is_ok());
    corpus.add("hsm_blobs", "sealed_credential", &sealed);
    corpus.add("hsm_blobs", "manifest_signature", ManifestSignature::from_bytes([0x42; 32]).as_bytes());
}

fn plain(authorization: Option<&str>, user: &str, password: &str) -> Vec<u8> {
    PlainCredentials {
        authorization_identity: authorization.map(str::to_owned),
        authentication_identity: user.to_owned(),
        password: Secret::new(password.as_bytes().to_vec()),
    }
    .to_message()
}

fn base64_plain(user: &str, password: &str) -> String {
    sasl::encode_response(&SaslResponse::Data(Secret::new(plain(None, user, password))))
}

fn line_protocol_seeds(corpus: &mut Corpus) {
    let address = |local: &str, domain: &str| lmtp::Address { local_part: local.into(), domain: domain.into() };
    let commands = [
        lmtp::Command::Lhlo { domain: "mx.example.com".into() },
        lmtp::Command::Mail {
            from: ReversePath::Address(address("alice", "example.com")),
            parameters: MailParameters { size_bytes: Some(1234), body: Some(BodyType::EightBitMime) },
        },
        lmtp::Command::Mail { from: ReversePath::Null, parameters: MailParameters::default() },
        lmtp::Command::Rcpt { to: ForwardPath::Address(address("bob", "example.org")) },
        lmtp::Command::Rcpt { to: ForwardPath::Address(address("john doe \"jr\"", "[192.0.2.1]")) },
        lmtp::Command::Rcpt { to: ForwardPath::Postmaster },
        lmtp::Command::Vrfy { argument: "someone".into() },
        lmtp::Command::Rset,
        lmtp::Command::Noop,
        lmtp::Command::StartTls,
    ];
    let mut session = Vec::new();
    for command in &commands {
        command.write_to(&mut session);
    }
    lmtp::Command::Data.write_to(&mut session);
    dot_stuffing::stuff(MESSAGE, &mut session);
    lmtp::Command::Quit.write_to(&mut session);
    corpus.add("lmtp_command", "session", &session);
    corpus.add(
        "lmtp_command",
        "source_route",
        b"MAIL FROM:<@relay.example,@other.example:alice@example.com> BODY=7BIT\r\nRCPT TO: <\"a b\"@example.org>\r\n",
    );
    corpus.add("lmtp_command", "errors", b"HELO x\r\nMAIL FROM:<a@b> FOO=1\r\nRCPT TO:<bad>\r\nDATA extra\r\n\r\n");
    corpus.add("lmtp_command", "data_then_pipelined", b"DATA\r\nline\r\n..leading dot\r\n.\r\nRSET\r\nQUIT\r\n");

    for (name, stream) in [
        ("message", [&[7, 0xff][..], &stuffed(MESSAGE)].concat()),
        ("empty_body", vec![1, 0xff, b'.', b'\r', b'\n']),
        ("too_large", [&[3, 1][..], &stuffed(&[b'x'; 64])].concat()),
        ("smuggling", [&[5, 0xff][..], b"a\n.\r\nb\r\n.\n\r\n.\r\nNEXT\r\n"].concat()),
        ("dot_lines", [&[2, 0xff][..], b"..\r\n...\r\n.x\r\n\r\n.\r\n"].concat()),
    ] {
        corpus.add("lmtp_data", name, &stream);
    }

    let pop3_commands = [
        pop3::Command::User { name: "alice@example.com".into() },
        pop3::Command::Pass { password: Secret::new(b"correct horse battery".to_vec()) },
        pop3::Command::Stat,
        pop3::Command::List { message: None },
        pop3::Command::List { message: Some(2) },
        pop3::Command::Uidl { message: Some(1) },
        pop3::Command::Retr { message: 1 },
        pop3::Command::Top { message: 1, lines: 10 },
        pop3::Command::Dele { message: 3 },
        pop3::Command::Noop,
        pop3::Command::Rset,
        pop3::Command::Capa,
        pop3::Command::Stls,
        pop3::Command::Quit,
    ];
    let mut session = Vec::new();
    for command in &pop3_commands {
        command.write_to(&mut session);
    }
    corpus.add("pop3_command", "session", &session);
    let auth = pop3::Command::Auth {
        mechanism: "PLAIN".into(),
        initial_response: Some(SaslResponse::Data(Secret::new(plain(None, "alice", "secret")))),
    };
    corpus.add(
        "pop3_command",
        "auth_plain",
        &[auth.to_bytes(), b"AUTH PLAIN\r\n*\r\nAUTH LOGIN =\r\n".to_vec()].concat(),
    );
    corpus.add("pop3_command", "errors", b"list 0\r\nTOP 1\r\nRETR x\r\nPASS\r\nXTND\r\nuser a b\r\n");

    corpus.add("sasl", "plain", format!("{}\r\n", base64_plain("tim", "tanstaaftanstaaf")).as_bytes());
    corpus.add("sasl", "responses", b"*\r\n=\r\nAGFsaWNlAHNlY3JldA==\r\n!!!\r\n");
    corpus.add("sasl", "plain_message", &plain(Some("admin"), "alice", "secret"));

    let append = AdminCommand::append("alice".into(), "INBOX".into(), b"Subject: hi\r\n\r\nhello\r\n".to_vec());
    corpus.add("admin_wire", "append", &wire::encode_request(&append));
    corpus.add(
        "admin_wire",
        "account_password",
        &wire::encode_request(&AdminCommand::AccountPassword {
            account: "alice".into(),
            password: "correct horse".into(),
        }),
    );
    let cat = AdminReply { ok: true, output: String::new(), payload_bytes: 5, payload: b"hello".to_vec() };
    corpus.add("admin_wire", "cat_reply", &wire::encode_reply(&cat));
    corpus.add("admin_wire", "failed_reply", &wire::encode_reply(&AdminReply::failed("no such account".into())));
}

fn stuffed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    dot_stuffing::stuff(body, &mut out);
    out
}

fn imap_seeds(corpus: &mut Corpus) {
    let seeds: [(&str, Vec<u8>); 12] = [
        ("login", b"a1 CAPABILITY\r\na2 LOGIN alice \"pass word\"\r\na3 LOGOUT\r\n".to_vec()),
        ("literals", b"a1 LOGIN {5}\r\nalice {6+}\r\nsecret\r\na2 SELECT {5}\r\nINBOX\r\n".to_vec()),
        ("literal_missing", b"a1 LOGIN {5}\r\n".to_vec()),
        ("mailboxes", b"a SELECT inbox\r\nb EXAMINE \"Entw&APw-rfe\"\r\nc CREATE Tom&-Jerry\r\nd RENAME a b\r\ne DELETE x\r\nf SUBSCRIBE y\r\ng UNSUBSCRIBE y\r\nh LIST \"\" \"*\"\r\ni LSUB \"\" %\r\nj STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)\r\n".to_vec()),
        ("append", [&b"a APPEND INBOX (\\Seen $Junk) \"17-Jul-1996 02:44:25 -0700\" {"[..], MESSAGE.len().to_string().as_bytes(), b"}\r\n", MESSAGE, b"\r\n"].concat()),
        ("fetch", b"a FETCH 1:4,7,9:* (FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)\r\nb UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]<0.100> BODY[1.2.TEXT] BODY[] RFC822.HEADER)\r\nc FETCH * ALL\r\nd FETCH 2 FAST\r\ne FETCH 3 FULL\r\n".to_vec()),
        ("store_copy_move", b"a STORE 1:3 +FLAGS.SILENT (\\Deleted)\r\nb UID STORE 5 -FLAGS (\\Seen foo)\r\nc STORE 2 FLAGS ()\r\nd COPY 1:2 Archive\r\ne UID MOVE 4:* Trash\r\nf EXPUNGE\r\ng UID EXPUNGE 3:5\r\nh CLOSE\r\ni UNSELECT\r\nj CHECK\r\n".to_vec()),
        ("search", b"a SEARCH CHARSET UTF-8 OR (FROM alice SUBJECT {3}\r\nhi!) NOT SEEN SINCE 1-Feb-2024 LARGER 100\r\nb UID SEARCH UID 1:* BODY \"x\" TEXT y HEADER X-Spam yes ON 2-Mar-2024 BEFORE 3-Apr-2024 SMALLER 5 ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN KEYWORD k UNKEYWORD k SENTBEFORE 1-Jan-2000 SENTON 1-Jan-2000 SENTSINCE 1-Jan-2000 TO b CC c BCC d 1,2\r\n".to_vec()),
        ("authenticate", [b"a AUTHENTICATE PLAIN\r\n".to_vec(), format!("{}\r\n", base64_plain("alice", "secret")).into_bytes(), format!("b AUTHENTICATE PLAIN {}\r\n", base64_plain("bob", "pw")).into_bytes(), b"c AUTHENTICATE PLAIN\r\n*\r\n".to_vec()].concat()),
        ("idle", b"a IDLE\r\nDONE\r\nb NOOP\r\nc NAMESPACE\r\nd STARTTLS\r\n".to_vec()),
        ("errors", b"* NOOP\r\na\r\na BOGUS\r\nb LOGIN {99999}\r\nc FETCH 0 FLAGS\r\nd SEARCH ((((((((NOT ALL))))))))\r\ne SELECT \"unterminated\r\nf LOGIN \"a\\x\" b\r\n".to_vec()),
        ("mailbox_encoded", format!("a CREATE \"{}\"\r\n", encode_mailbox_name("Entwürfe/📧 mail")).into_bytes()),
    ];
    for (name, bytes) in seeds {
        corpus.add("imap_command", name, &bytes);
    }
    for (name, set) in [
        ("ranges", "1:4,7,9:*"),
        ("star", "*"),
        ("reversed", "10:2"),
        ("largest", "4294967295"),
        ("many", "1,3,5,7:9,2:*,*:4"),
    ] {
        corpus.add("imap_sequence_set", name, set.as_bytes());
    }
    for (name, wire) in [
        ("rfc3501", "~peter/mail/&U,BTFw-/&ZeVnLIqe-".to_owned()),
        ("ampersand", "Tom &- Jerry".to_owned()),
        ("latin", "Entw&APw-rfe".to_owned()),
        ("astral", encode_mailbox_name("mail \u{1f4e7} box")),
    ] {
        corpus.add("imap_mailbox_name", name, wire.as_bytes());
    }
}

fn message_seeds(corpus: &mut Corpus) {
    let seeds: [(&str, &[u8]); 6] = [
        ("simple", b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\nFrom: Terry Gray <gray@cac.washington.edu>\r\nSubject: IMAP4rev1 WG mtg summary\r\nTo: imap@cac.washington.edu\r\nCc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\nMessage-Id: <B27397-0100000@cac.washington.edu>\r\nIn-Reply-To: <x@y>\r\n\r\nHello\r\nWorld\r\n"),
        ("multipart", b"From: a@b.c\r\nSubject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Language: en, de\r\n\r\nhi\r\n--XX\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-ID: <id1>\r\nContent-Description: a file\r\nContent-Location: http://x/y\r\n\r\nAAAA\r\n--XX--\r\n"),
        ("nested_rfc822", b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=\"B1\"\r\n\r\n--B1\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@x.y\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=\"B2\"\r\n\r\n--B2\r\nContent-Type: text/plain\r\n\r\nplain\r\n--B2\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--B2--\r\n--B1--\r\n"),
        ("groups_and_encoded_words", "From: =?UTF-8?Q?Ren=C3=A9?= <rene@example.com>\r\nTo: Team: a@x.y, \"Quote \\\" Name\" <b@x.y>;, undisclosed-recipients:;\r\nReply-To: nodomain\r\nSubject: =?ISO-8859-1?B?SGVsbG8=?= \"quoted\" \\ back\r\n\r\nbody\r\n".as_bytes()),
        ("folded_headers", b"Subject: a\r\n very\r\n\tlong subject\r\nFrom: x@y.z\r\nContent-Type: text/plain;\r\n charset=\"us-ascii\";\r\n format=flowed\r\n\r\nline\r\n"),
        ("no_body", b"From: x@y.z\r\n"),
    ];
    for (name, bytes) in seeds {
        corpus.add("message_structure", name, bytes);
    }
}

fn backup_seeds(corpus: &mut Corpus) {
    let wrapped =
        |version: u32, fill: u8, blocks: usize| WrappedDek::new(version, vec![fill; blocks * 8]).expect("wrapped");
    let table = KeyTable {
        backup_key_version: 2,
        entries: vec![(1, wrapped(2, 0x11, 5)), (1 << 48 | 7, wrapped(2, 0x22, 5)), (u64::MAX, wrapped(9, 0x33, 64))],
    };
    corpus.add("backup_key_table", "three_accounts", &table.encode());
    corpus.add("backup_key_table", "empty", &KeyTable { backup_key_version: 1, entries: Vec::new() }.encode());
    let file = |name: &str, size: u64| ManifestFile {
        name: name.into(),
        size,
        blake3: blake3::hash(name.as_bytes()).to_hex().to_string(),
    };
    let segment = |shard: u32, segment_id: u64, size: u64| ManifestSegment {
        shard,
        segment_id,
        file: file(&format!("segments/shard-{shard:03}/{segment_id:016}.seg"), size),
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        created_unix_ms: 1_700_000_000_000,
        store: StoreIdentity {
            shards: 2,
            data_dir: "/var/lib/mailvault".into(),
            hsm_token: "mailvault \"prod\"".into(),
        },
        key_table: file("keytables/00ff.keys", 76),
        segments: vec![segment(0, 1, 8192), segment(0, 3, 1 << 28), segment(1, 2, 4096)],
    };
    let body = manifest.to_body().expect("manifest body");
    let signature = ManifestSignature::from_bytes([0x42; 32]);
    corpus.add("backup_manifest", "signed", &join_signed(&body, &signature));
    corpus.add("backup_manifest", "body", body.as_bytes());
    let empty = Manifest { segments: Vec::new(), ..manifest };
    corpus.add(
        "backup_manifest",
        "signed_no_segments",
        &join_signed(&empty.to_body().expect("manifest body"), &signature),
    );
}

fn main() {
    let root = std::env::args().nth(1).map_or_else(|| PathBuf::from("fuzz/corpus"), PathBuf::from);
    assert!(root.parent().is_none_or(|parent| parent.as_os_str().is_empty() || Path::new(parent).is_dir()));
    let mut corpus = Corpus { root, count: 0 };
    engine_seeds(&mut corpus);
    hsm_seeds(&mut corpus);
    line_protocol_seeds(&mut corpus);
    imap_seeds(&mut corpus);
    message_seeds(&mut corpus);
    backup_seeds(&mut corpus);
    println!("wrote {} seeds under {}", corpus.count, corpus.root.display());
}
