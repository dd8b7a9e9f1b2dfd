//! Property: no byte sequence makes any codec panic, and every answer is consistent with its
//! input (a complete command consumes at least one byte and no more than it was given).

use mailvault_frontends::proto::{Limits, Parsed, discard_line, dot_stuffing, imap, lmtp, pop3, sasl};
use proptest::prelude::*;

/// Fragments that steer random input into the deeper parts of the grammars.
const FRAGMENTS: &[&str] = &[
    "A1 ",
    "a ",
    "LOGIN ",
    "AUTHENTICATE PLAIN ",
    "SELECT ",
    "LIST ",
    "STATUS ",
    "APPEND ",
    "SEARCH ",
    "UID ",
    "FETCH ",
    "STORE ",
    "COPY ",
    "MOVE ",
    "EXPUNGE",
    "IDLE",
    "DONE",
    "CHARSET ",
    "NOT ",
    "OR ",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    "{",
    "}",
    "{0}",
    "{3}",
    "{5+}",
    "{99999999999999999999}",
    "\"",
    "\\",
    " ",
    "\r\n",
    "\r",
    "\n",
    "*",
    ":",
    ",",
    "1",
    "0",
    "4294967295",
    "4294967296",
    "BODY[",
    "BODY.PEEK[",
    "HEADER.FIELDS (",
    "TEXT",
    "MIME",
    "1.2.",
    "<0.10>",
    "FLAGS",
    "+FLAGS.SILENT ",
    "\\Seen",
    "$Junk",
    "&",
    "&-",
    "&AGE-",
    "&U,BTFw-",
    "INBOX",
    "ALL",
    "FAST",
    "HEADER ",
    "SINCE 1-Feb-1994 ",
    "\"17-Jul-1996 02:44:25 -0700\" ",
    "MAIL FROM:",
    "RCPT TO:",
    "<>",
    "<a@b>",
    "<\"q\\\"x\"@[1.2.3.4]>",
    "<Postmaster>",
    " SIZE=",
    " BODY=8BITMIME",
    "LHLO ",
    "VRFY ",
    "DATA",
    "USER ",
    "PASS ",
    "AUTH ",
    "TOP ",
    "LIST ",
    "RETR ",
    "=",
    "AHRpbQB0YW5zdGFhZnRhbnN0YWFm",
    ".",
    "..",
    "\u{e9}",
    "\0",
    "From: a <b@c>\r\n",
    "To: g: x@y, \"q\" <z@w>;\r\n",
    "Content-Type: multipart/mixed; boundary=B\r\n",
    "--B\r\n",
    "--B--\r\n",
    "Content-Type: message/rfc822\r\n",
    "Content-Transfer-Encoding: base64\r\n",
];

fn protocol_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..40)
            .prop_map(|fragments| fragments.concat().into_bytes()),
    ]
}

fn small_limits() -> impl Strategy<Value = Limits> {
    (1_usize..200, 0_usize..64, 0_usize..64, 0_usize..8).prop_map(|(line, literal, message, depth)| Limits {
        line_bytes_max: line,
        literal_bytes_max: literal,
        message_bytes_max: message,
        recipients_max: 10,
        nesting_depth_max: depth,
    })
}

fn check_line_result<T, E>(result: Result<Parsed<T>, mailvault_frontends::proto::Rejected<E>>, length: usize) {
    match result {
        Ok(Parsed::Complete { consumed_bytes, .. }) => {
            assert!(consumed_bytes > 0 && consumed_bytes <= length);
        }
        Ok(Parsed::NeedsMoreData) => {}
        Err(rejected) => assert!(rejected.consumed_bytes <= length),
    }
}

fn check_everything(input: &[u8], limits: &Limits) {
    check_line_result(lmtp::parse_command(input, limits), input.len());
    check_line_result(pop3::parse_command(input, limits), input.len());
    check_line_result(sasl::parse_response_line(input, limits), input.len());
    check_line_result(imap::parse_idle_done(input, limits), input.len());
    match imap::parse_command(input, limits) {
        Ok(imap::Parsed::Complete { consumed_bytes, .. }) => {
            assert!(consumed_bytes > 0 && consumed_bytes <= input.len());
        }
        Ok(imap::Parsed::NeedsLiteral(request)) => {
            assert!(request.data_offset <= input.len());
            assert!(request.size <= limits.literal_bytes_max.max(limits.message_bytes_max) as u64);
        }
        Ok(imap::Parsed::NeedsMoreData) => {}
        Err(rejected) => {
            assert!(rejected.consumed_bytes <= input.len());
            let mut reply = Vec::new();
            rejected.error.write_reply(&mut reply);
            assert_eq!(reply.split(|&byte| byte == b'\n').count(), 2, "one reply line");
        }
    }
    let mut decoder = lmtp::DataDecoder::new(limits);
    let mut body = Vec::new();
    let _ = decoder.decode(input, &mut body);
    let mut unstuffer = dot_stuffing::Unstuffer::new(limits.message_bytes_max);
    let _ = unstuffer.decode(input, &mut body);
    let _ = discard_line(input);
    let _ = imap::decode_mailbox_name(input);
    let _ = imap::SequenceSet::parse(input);
    let _ = sasl::PlainCredentials::parse(input);
    let structure = imap::envelope::message_structure(input);
    assert!(structure.envelope.starts_with(b"(") && structure.body_structure.starts_with(b"("));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(input in protocol_like()) {
        check_everything(&input, &Limits::imap());
        check_everything(&input, &Limits::lmtp());
    }

    #[test]
    fn arbitrary_bytes_never_panic_under_tiny_limits(input in protocol_like(), limits in small_limits()) {
        check_everything(&input, &limits);
    }

    #[test]
    fn sequence_sets_resolve_within_bounds(input in "[0-9*:,]{1,20}", largest in 0_u32..50) {
        if let Some(set) = imap::SequenceSet::parse(input.as_bytes()) {
            let numbers: Vec<u32> = set.iter(largest).collect();
            prop_assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]));
            prop_assert!(numbers.iter().all(|&number| number >= 1 && number <= largest));
            for number in 0..=largest + 1 {
                prop_assert_eq!(set.contains(number, largest), numbers.contains(&number));
            }
        }
    }
}
