//! An IMAP session's input: pipelined commands through `imap::parse_command`, literals
//! included. When a literal's data is missing (`NeedsLiteral`) the harness supplies it, then
//! the line end, and parses the whole buffer again, as a session does after its continuation
//! request. After `AUTHENTICATE` without an initial response the next line goes to
//! `sasl::parse_response_line`, after `IDLE` to `parse_idle_done`.
//!
//! Every step consumes input and no more than it has; a literal request points inside the
//! buffer at data not all there yet, and asks again at the same offset until it is; a command's
//! bytes alone parse to the same command and a shorter prefix asks for more; a rejection's
//! bytes alone give the same rejection; values respect the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_frontends::proto::imap::{self, Command, CommandKind, Parsed, SequenceSet, Tag};
use mailvault_frontends::proto::{self, Limits, LineDiscard, discard_line, sasl};

/// Small limits, so that fuzz-sized inputs reach them.
const LIMITS: Limits =
    Limits { line_bytes_max: 512, literal_bytes_max: 256, message_bytes_max: 2048, ..Limits::imap() };
const STEPS_MAX: usize = 256;
const LITERALS_SUPPLIED_MAX: usize = 16;

/// What the session expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Commands,
    DiscardLine,
    SaslResponse,
    IdleDone,
}

fn parse(input: &[u8]) -> Result<Parsed<Command>, proto::Rejected<imap::TaggedError>> {
    imap::parse_command(input, &LIMITS)
}

fn check_prefixes(command: &[u8], value: &Command) {
    let complete = Parsed::Complete { value: value.clone(), consumed_bytes: command.len() };
    assert_eq!(parse(command), Ok(complete), "the command's own bytes parse differently");
    let cuts: Vec<usize> = if command.len() <= 64 {
        (0..command.len()).collect()
    } else {
        vec![command.len() - 1, command.len() - 2, command.len() / 2]
    };
    for cut in cuts {
        match parse(&command[..cut]) {
            Ok(Parsed::NeedsMoreData) => {}
            Ok(Parsed::NeedsLiteral(request)) => assert!(request.data_offset <= cut),
            other => panic!("a {cut}-byte prefix of a complete command gave {other:?}"),
        }
    }
}

fn check_value(command: &Command) {
    assert_eq!(Tag::new(command.tag.as_str()).as_ref(), Some(&command.tag));
    let check_set = |set: &SequenceSet| {
        assert_eq!(SequenceSet::parse(set.to_string().as_bytes()).as_ref(), Some(set));
    };
    match &command.kind {
        CommandKind::Append { message, .. } => assert!(message.len() <= LIMITS.message_bytes_max),
        CommandKind::Fetch { set, attributes, .. } => {
            check_set(set);
            let _ = attributes.expand();
        }
        CommandKind::Store { set, .. } | CommandKind::Copy { set, .. } | CommandKind::Move { set, .. } => {
            check_set(set);
        }
        CommandKind::Expunge { uids: Some(set) } => check_set(set),
        CommandKind::Search { criteria, .. } => {
            let mut out = Vec::new();
            for key in criteria {
                key.write_to(&mut out);
            }
        }
        _ => {}
    }
}

/// Literal data for the harness to supply: bytes of the input, cycled (or 'x').
fn literal_data(input: &[u8], length: usize) -> Vec<u8> {
    if input.is_empty() { vec![b'x'; length] } else { input.iter().copied().cycle().take(length).collect() }
}

fuzz_target!(|input: &[u8]| {
    let mut buffer = input.to_vec();
    let mut start = 0;
    let mut mode = Mode::Commands;
    let mut literals_supplied = 0;
    let mut last_literal_offset = None;
    for _ in 0..STEPS_MAX {
        let rest = &buffer[start..];
        if rest.is_empty() {
            break;
        }
        let consumed = match mode {
            Mode::DiscardLine => match discard_line(rest) {
                LineDiscard::Finished { consumed_bytes } => {
                    mode = Mode::Commands;
                    consumed_bytes
                }
                LineDiscard::Unfinished { consumed_bytes: 0 } => break,
                LineDiscard::Unfinished { consumed_bytes } => consumed_bytes,
            },
            Mode::SaslResponse | Mode::IdleDone => {
                let result = if mode == Mode::SaslResponse {
                    sasl::parse_response_line(rest, &LIMITS)
                        .map(|parsed| parsed.complete().map(|(_, length)| length))
                        .map_err(|rejected| (rejected.consumed_bytes, rejected.line_finished))
                } else {
                    imap::parse_idle_done(rest, &LIMITS)
                        .map(|parsed| parsed.complete().map(|(_, length)| length))
                        .map_err(|rejected| (rejected.consumed_bytes, rejected.line_finished))
                };
                match result {
                    Ok(None) => break,
                    Ok(Some(consumed_bytes)) => {
                        mode = Mode::Commands;
                        consumed_bytes
                    }
                    Err((consumed_bytes, line_finished)) => {
                        mode = if line_finished { Mode::Commands } else { Mode::DiscardLine };
                        consumed_bytes
                    }
                }
            }
            Mode::Commands => match parse(rest) {
                Ok(Parsed::Complete { value, consumed_bytes }) => {
                    assert!(consumed_bytes >= 2 && consumed_bytes <= rest.len());
                    check_prefixes(&rest[..consumed_bytes], &value);
                    check_value(&value);
                    mode = match value.kind {
                        CommandKind::Authenticate { initial_response: None, .. } => Mode::SaslResponse,
                        CommandKind::Idle => Mode::IdleDone,
                        _ => Mode::Commands,
                    };
                    last_literal_offset = None;
                    consumed_bytes
                }
                Ok(Parsed::NeedsMoreData) => break,
                Ok(Parsed::NeedsLiteral(request)) => {
                    let data_offset = request.data_offset;
                    assert!(data_offset <= rest.len(), "literal data starts past the input");
                    assert!(rest[..data_offset].ends_with(b"\r\n"), "literal data does not follow a line end");
                    let size = usize::try_from(request.size).expect("literal size fits");
                    assert!(size <= LIMITS.literal_bytes_max.max(LIMITS.message_bytes_max));
                    assert!(rest.len() < data_offset + size, "asks for a literal that is all there");
                    assert!(last_literal_offset.is_none_or(|last| last < data_offset), "asked again for a literal");
                    assert_eq!(parse(rest), Ok(Parsed::NeedsLiteral(request)), "parsing again asks differently");
                    if literals_supplied == LITERALS_SUPPLIED_MAX {
                        break;
                    }
                    literals_supplied += 1;
                    last_literal_offset = Some(data_offset);
                    let missing = data_offset + size - rest.len();
                    let mut data = literal_data(input, missing);
                    data.extend_from_slice(b"\r\n");
                    buffer.extend_from_slice(&data);
                    continue;
                }
                Err(rejected) => {
                    let consumed_bytes = rejected.consumed_bytes;
                    assert!(consumed_bytes > 0 && consumed_bytes <= rest.len());
                    let mut reply = Vec::new();
                    rejected.error.write_reply(&mut reply);
                    assert!(
                        reply.ends_with(b"\r\n")
                            && !reply[..reply.len() - 2].iter().any(|&byte| byte == b'\r' || byte == b'\n'),
                        "reply is not one line"
                    );
                    if rejected.line_finished {
                        assert_eq!(
                            parse(&rest[..consumed_bytes]),
                            Err(rejected.clone()),
                            "the rejected bytes alone differ"
                        );
                    } else {
                        mode = Mode::DiscardLine;
                    }
                    last_literal_offset = None;
                    consumed_bytes
                }
            },
        };
        assert!(consumed <= buffer.len() - start);
        start += consumed;
    }
});
