//! The admin socket's framing, without IO: a command or a reply is one JSON line, then the
//! payload its line announces (the message an `append` stores, `message_bytes` long; the message
//! a `cat` read, `payload_bytes` long). The server and the client read bytes until
//! [`decode_request`] or [`decode_reply`] says a frame is complete.

use super::command::{AdminCommand, AdminReply};
use super::{PAYLOAD_BYTES_MAX, REPLY_LINE_BYTES_MAX, REQUEST_LINE_BYTES_MAX};

/// What the bytes read so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<T> {
    /// Not a whole frame yet: read more.
    NeedsMore,
    /// A frame, the first `consumed_bytes` of the input.
    Complete { value: T, consumed_bytes: usize },
}

/// A value framed as its JSON line, then the payload that line announces.
trait Framed: serde::Serialize + serde::de::DeserializeOwned {
    /// What the frame is called in errors.
    const WHAT: &'static str;
    const LINE_BYTES_MAX: usize;
    /// How many payload bytes the line announces.
    fn payload_bytes(&self) -> usize;
    fn payload(&self) -> &[u8];
    fn set_payload(&mut self, payload: &[u8]);
}

impl Framed for AdminCommand {
    const WHAT: &'static str = "admin request";
    const LINE_BYTES_MAX: usize = REQUEST_LINE_BYTES_MAX;

    fn payload_bytes(&self) -> usize {
        match self {
            Self::Append { message_bytes, .. } => *message_bytes,
            _ => 0,
        }
    }

    fn payload(&self) -> &[u8] {
        AdminCommand::payload(self)
    }

    fn set_payload(&mut self, payload: &[u8]) {
        if let Self::Append { message, .. } = self {
            *message = payload.to_vec();
        }
    }
}

impl Framed for AdminReply {
    const WHAT: &'static str = "reply from the admin socket";
    const LINE_BYTES_MAX: usize = REPLY_LINE_BYTES_MAX;

    fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn set_payload(&mut self, payload: &[u8]) {
        self.payload = payload.to_vec();
    }
}

/// The command's line and its payload.
pub fn encode_request(command: &AdminCommand) -> Vec<u8> {
    encode(command)
}

/// The reply's line and its payload.
pub fn encode_reply(reply: &AdminReply) -> Vec<u8> {
    encode(reply)
}

/// A command from the start of `bytes`; `Err` says why the bytes are no command.
pub fn decode_request(bytes: &[u8]) -> Result<Decoded<AdminCommand>, String> {
    decode(bytes)
}

/// A reply from the start of `bytes`; `Err` says why the bytes are no reply.
pub fn decode_reply(bytes: &[u8]) -> Result<Decoded<AdminReply>, String> {
    decode(bytes)
}

fn encode(value: &impl Framed) -> Vec<u8> {
    // Serializing these types cannot fail (string keys, no maps of other keys).
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes.extend_from_slice(value.payload());
    bytes
}

fn decode<T: Framed>(bytes: &[u8]) -> Result<Decoded<T>, String> {
    let (what, line_bytes_max) = (T::WHAT, T::LINE_BYTES_MAX);
    let Some(line_end) = bytes.iter().take(line_bytes_max + 1).position(|&byte| byte == b'\n') else {
        if bytes.len() > line_bytes_max {
            return Err(format!("{what} too long: no line end in its first {line_bytes_max} bytes"));
        }
        return Ok(Decoded::NeedsMore);
    };
    let mut value: T = serde_json::from_slice(&bytes[..line_end]).map_err(|error| format!("bad {what}: {error}"))?;
    let payload_bytes = value.payload_bytes();
    if payload_bytes > PAYLOAD_BYTES_MAX {
        return Err(format!("{what} announces {payload_bytes} bytes; the largest message is {PAYLOAD_BYTES_MAX}"));
    }
    let payload_start = line_end + 1;
    let Some(payload) = bytes.get(payload_start..payload_start + payload_bytes) else {
        return Ok(Decoded::NeedsMore);
    };
    if payload_bytes > 0 {
        value.set_payload(payload);
    }
    Ok(Decoded::Complete { value, consumed_bytes: payload_start + payload_bytes })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn any_command() -> impl Strategy<Value = AdminCommand> {
        let name = "[a-zA-Z0-9@.\\-\u{e9}\u{4e2d} \"\\\\]{0,24}";
        prop_oneof![
            (name, name, proptest::collection::vec(any::<u8>(), 0..600))
                .prop_map(|(account, mailbox, message)| AdminCommand::append(account, mailbox, message)),
            (name, name, any::<u32>()).prop_map(|(account, mailbox, uid)| AdminCommand::Cat { account, mailbox, uid }),
            (name, name).prop_map(|(account, password)| AdminCommand::AccountPassword { account, password }),
            name.prop_map(|account| AdminCommand::AccountPrune { account }),
            Just(AdminCommand::Compact),
            Just(AdminCommand::Stats),
        ]
    }

    proptest! {
        /// A command's frame decodes to the same command, whole, with any bytes after it left
        /// alone; every shorter prefix asks for more.
        #[test]
        fn a_request_round_trips_and_its_prefixes_ask_for_more(command in any_command(), after in proptest::collection::vec(any::<u8>(), 0..8)) {
            let frame = encode_request(&command);
            let mut bytes = frame.clone();
            bytes.extend_from_slice(&after);
            prop_assert_eq!(decode_request(&bytes), Ok(Decoded::Complete { value: command, consumed_bytes: frame.len() }));
            for cut in [0, frame.len() / 3, frame.len() / 2, frame.len() - 1] {
                prop_assert_eq!(decode_request(&frame[..cut]), Ok(Decoded::NeedsMore), "prefix of {}", cut);
            }
        }

        #[test]
        fn a_reply_round_trips(ok in any::<bool>(), output in ".{0,40}", payload in proptest::collection::vec(any::<u8>(), 0..600)) {
            let reply = AdminReply { ok, output, payload_bytes: payload.len(), payload };
            let frame = encode_reply(&reply);
            prop_assert_eq!(decode_reply(&frame), Ok(Decoded::Complete { value: reply, consumed_bytes: frame.len() }));
            prop_assert_eq!(decode_reply(&frame[..frame.len() - 1]), Ok(Decoded::NeedsMore));
        }

        /// Whatever the bytes, decoding answers: never a panic, never more than it was given.
        #[test]
        fn any_bytes_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Decoded::Complete { consumed_bytes, .. }) = decode_request(&bytes) {
                prop_assert!(consumed_bytes <= bytes.len());
            }
            if let Ok(Decoded::Complete { consumed_bytes, .. }) = decode_reply(&bytes) {
                prop_assert!(consumed_bytes <= bytes.len());
            }
        }
    }

    #[test]
    fn oversized_lines_and_payloads_are_refused() {
        let endless = vec![b'x'; REQUEST_LINE_BYTES_MAX + 1];
        assert!(decode_request(&endless).is_err_and(|why| why.contains("too long")));
        assert_eq!(decode_request(&endless[..REQUEST_LINE_BYTES_MAX]), Ok(Decoded::NeedsMore));
        assert_eq!(decode_reply(&endless), Ok(Decoded::NeedsMore), "a reply's line may be longer: a long listing");
        let huge = format!(
            "{{\"command\":\"append\",\"account\":\"a\",\"mailbox\":\"INBOX\",\"message_bytes\":{}}}\n",
            PAYLOAD_BYTES_MAX + 1
        );
        assert!(decode_request(huge.as_bytes()).is_err_and(|why| why.contains("largest message")));
        let reply = format!("{{\"ok\":true,\"output\":\"\",\"payload_bytes\":{}}}\n", usize::MAX);
        assert!(decode_reply(reply.as_bytes()).is_err());
    }

    /// Replies from a server before payloads existed have no `payload_bytes`: none follows.
    #[test]
    fn a_reply_without_payload_bytes_has_none() {
        let decoded = decode_reply(b"{\"ok\":true,\"output\":\"done\"}\n");
        let reply = AdminReply { ok: true, output: "done".into(), ..AdminReply::default() };
        assert_eq!(decoded, Ok(Decoded::Complete { value: reply, consumed_bytes: 28 }));
    }
}
