//! An LMTP session's input: pipelined commands through `lmtp::parse_command`, and after `DATA`
//! the body through a `DataDecoder`, resynchronising after rejections as a session does.
//! Every step consumes input and no more than it has; a command's bytes alone parse to the
//! same command and any shorter prefix of them asks for more; a command's wire form parses
//! back to the same command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_frontends::proto::lmtp::{self, Command, DataDecoder, DataStatus};
use mailvault_frontends::proto::{Limits, LineDiscard, Parsed, discard_line};

/// Small limits, so that fuzz-sized inputs reach them.
const LIMITS: Limits = Limits { line_bytes_max: 512, message_bytes_max: 1024, ..Limits::lmtp() };
const STEPS_MAX: usize = 512;

fn check_prefixes(command: &[u8], value: &Command) {
    assert_eq!(
        lmtp::parse_command(command, &LIMITS),
        Ok(Parsed::Complete { value: value.clone(), consumed_bytes: command.len() })
    );
    for cut in [command.len() - 1, command.len() / 2] {
        assert_eq!(lmtp::parse_command(&command[..cut], &LIMITS), Ok(Parsed::NeedsMoreData), "prefix of {cut} bytes");
    }
}

fn check_round_trip(value: &Command) {
    let wire = value.to_bytes();
    match lmtp::parse_command(&wire, &Limits::lmtp()) {
        Ok(Parsed::Complete { value: again, consumed_bytes }) => {
            assert_eq!(consumed_bytes, wire.len());
            assert_eq!(&again, value, "wire form {:?} parses differently", String::from_utf8_lossy(&wire));
        }
        other => panic!("wire form {:?} of {value:?} does not parse: {other:?}", String::from_utf8_lossy(&wire)),
    }
}

fuzz_target!(|input: &[u8]| {
    let mut rest = input;
    let mut discarding = false;
    let mut data: Option<DataDecoder> = None;
    let mut body = Vec::new();
    for _ in 0..STEPS_MAX {
        if rest.is_empty() {
            break;
        }
        if let Some(decoder) = data.as_mut() {
            let consumed_bytes = match decoder.decode(rest, &mut body) {
                Ok(DataStatus::NeedsMoreData) => break,
                Ok(DataStatus::Complete { consumed_bytes }) => {
                    assert!(body.len() <= LIMITS.message_bytes_max);
                    consumed_bytes
                }
                Err(error) => {
                    let lmtp::DataError::TooLarge { consumed_bytes, body_bytes, body_bytes_max } = error else {
                        panic!("unknown data error {error:?}");
                    };
                    assert!(body_bytes > body_bytes_max as u64);
                    consumed_bytes
                }
            };
            assert!(consumed_bytes > 0 && consumed_bytes <= rest.len());
            rest = &rest[consumed_bytes..];
            data = None;
            body.clear();
            continue;
        }
        if discarding {
            match discard_line(rest) {
                LineDiscard::Finished { consumed_bytes } => {
                    assert!(consumed_bytes >= 2 && consumed_bytes <= rest.len());
                    rest = &rest[consumed_bytes..];
                    discarding = false;
                }
                LineDiscard::Unfinished { consumed_bytes } => {
                    assert!(consumed_bytes <= rest.len());
                    if consumed_bytes == 0 {
                        break;
                    }
                    rest = &rest[consumed_bytes..];
                }
            }
            continue;
        }
        match lmtp::parse_command(rest, &LIMITS) {
            Ok(Parsed::Complete { value, consumed_bytes }) => {
                assert!(consumed_bytes >= 2 && consumed_bytes <= rest.len());
                check_prefixes(&rest[..consumed_bytes], &value);
                check_round_trip(&value);
                if value == Command::Data {
                    data = Some(DataDecoder::new(&LIMITS));
                }
                rest = &rest[consumed_bytes..];
            }
            Ok(Parsed::NeedsMoreData) => {
                assert!(rest.len() < LIMITS.line_bytes_max);
                break;
            }
            Err(rejected) => {
                assert!(rejected.consumed_bytes > 0 && rejected.consumed_bytes <= rest.len());
                let _ = rejected.error.reply();
                if rejected.line_finished {
                    let line = &rest[..rejected.consumed_bytes];
                    assert!(line.ends_with(b"\r\n"));
                    assert_eq!(lmtp::parse_command(line, &LIMITS), Err(rejected.clone()));
                } else {
                    discarding = true;
                }
                rest = &rest[rejected.consumed_bytes..];
            }
        }
    }
});
