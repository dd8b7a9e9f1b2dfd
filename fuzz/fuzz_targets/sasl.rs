//! SASL: response lines through `sasl::parse_response_line` (pipelined, as a session reads
//! them), each decoded response through `PlainCredentials::parse`, and the raw input as a PLAIN
//! message too. Responses and PLAIN messages re-encode to what parses back to them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_frontends::proto::sasl::{self, PlainCredentials, SaslResponse};
use mailvault_frontends::proto::{Limits, LineDiscard, Parsed, discard_line};

const LIMITS: Limits = Limits { line_bytes_max: 512, ..Limits::imap() };
const STEPS_MAX: usize = 256;

fn check_plain(message: &[u8]) {
    if let Ok(credentials) = PlainCredentials::parse(message) {
        assert_eq!(credentials.to_message(), message, "PLAIN message does not re-encode to itself");
        assert!(!credentials.authentication_identity.is_empty());
        assert!(!credentials.password.expose().is_empty());
    }
}

fuzz_target!(|input: &[u8]| {
    check_plain(input);
    let mut rest = input;
    let mut discarding = false;
    for _ in 0..STEPS_MAX {
        if rest.is_empty() {
            break;
        }
        if discarding {
            match discard_line(rest) {
                LineDiscard::Finished { consumed_bytes } => {
                    rest = &rest[consumed_bytes..];
                    discarding = false;
                }
                LineDiscard::Unfinished { consumed_bytes: 0 } => break,
                LineDiscard::Unfinished { consumed_bytes } => rest = &rest[consumed_bytes..],
            }
            continue;
        }
        match sasl::parse_response_line(rest, &LIMITS) {
            Ok(Parsed::Complete { value, consumed_bytes }) => {
                assert!(consumed_bytes >= 2 && consumed_bytes <= rest.len());
                let mut wire = sasl::encode_response(&value).into_bytes();
                wire.extend_from_slice(b"\r\n");
                assert_eq!(
                    sasl::parse_response_line(&wire, &Limits::imap()),
                    Ok(Parsed::Complete { value: value.clone(), consumed_bytes: wire.len() }),
                    "encoded response does not parse back"
                );
                if let SaslResponse::Data(message) = &value {
                    check_plain(message.expose());
                }
                rest = &rest[consumed_bytes..];
            }
            Ok(Parsed::NeedsMoreData) => break,
            Err(rejected) => {
                assert!(rejected.consumed_bytes > 0 && rejected.consumed_bytes <= rest.len());
                discarding = !rejected.line_finished;
                rest = &rest[rejected.consumed_bytes..];
            }
        }
    }
});
