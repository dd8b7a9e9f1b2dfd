//! SASL pieces shared by POP3 AUTH and IMAP AUTHENTICATE: the base64 client response line and
//! the PLAIN mechanism's message (RFC 4616).

use super::base64::{self, Variant};
use super::line::{Line, take_line};
use super::secret::Secret;
use super::{Limits, Parsed, Rejected};

/// Longest identity or password inside a PLAIN message, in bytes (RFC 4616 §2 allows 255
/// characters; UTF-8 needs up to four bytes each).
pub const PLAIN_FIELD_BYTES_MAX: usize = 255 * 4;

/// A client's answer to a SASL challenge, or its initial response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslResponse {
    /// Decoded response bytes (`=` on the wire means an empty response, RFC 4959 §3).
    Data(Secret),
    /// The client sent `*`: the exchange is cancelled (reply BAD / -ERR).
    Cancel,
}

/// Why a SASL response could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// The response line is longer than `line_bytes_max`.
    #[error("SASL response line too long")]
    LineTooLong,
    /// The response is not valid base64.
    #[error("invalid base64 in SASL response")]
    InvalidBase64,
    /// The PLAIN message does not have exactly three NUL-separated fields.
    #[error("PLAIN message must be authzid NUL authcid NUL password")]
    MalformedPlain,
    /// A PLAIN field is not UTF-8, is empty where it must not be, or is too long.
    #[error("invalid identity or password in PLAIN message")]
    InvalidPlainField,
}

/// Parses the client's answer to a challenge: one line of base64, or `*` to cancel
/// (RFC 4954 §4, RFC 5034 §4, RFC 3501 §6.2.2). Used by POP3 AUTH and IMAP AUTHENTICATE.
pub fn parse_response_line(input: &[u8], limits: &Limits) -> Result<Parsed<SaslResponse>, Rejected<SaslError>> {
    match take_line(input, limits.line_bytes_max) {
        Line::Incomplete => Ok(Parsed::NeedsMoreData),
        Line::TooLong { consumed_bytes, line_finished } => {
            Err(Rejected { error: SaslError::LineTooLong, consumed_bytes, line_finished })
        }
        Line::Complete { content, consumed_bytes } => match decode_response(content) {
            Ok(value) => Ok(Parsed::Complete { value, consumed_bytes }),
            Err(error) => Err(Rejected { error, consumed_bytes, line_finished: true }),
        },
    }
}

/// Decodes one response token (the text of a continuation line, or an initial response).
pub(crate) fn decode_response(text: &[u8]) -> Result<SaslResponse, SaslError> {
    match text {
        b"*" => Ok(SaslResponse::Cancel),
        b"=" => Ok(SaslResponse::Data(Secret::new(Vec::new()))),
        _ => base64::decode(text, Variant::Standard)
            .map(|bytes| SaslResponse::Data(Secret::new(bytes)))
            .ok_or(SaslError::InvalidBase64),
    }
}

/// Encodes a response token the way [`decode_response`] reads it (for clients and tests).
pub fn encode_response(response: &SaslResponse) -> String {
    match response {
        SaslResponse::Cancel => "*".to_owned(),
        SaslResponse::Data(bytes) if bytes.expose().is_empty() => "=".to_owned(),
        SaslResponse::Data(bytes) => base64::encode(bytes.expose()),
    }
}

/// The three fields of a PLAIN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// Who to act as, when it differs from the authenticated identity.
    pub authorization_identity: Option<String>,
    /// Who is logging in.
    pub authentication_identity: String,
    /// The password.
    pub password: Secret,
}

impl PlainCredentials {
    /// Parses a decoded PLAIN message: `[authzid] NUL authcid NUL passwd`.
    pub fn parse(message: &[u8]) -> Result<Self, SaslError> {
        let mut fields = message.split(|&byte| byte == 0);
        let (Some(authorization), Some(authentication), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(SaslError::MalformedPlain);
        };
        let valid = |field: &[u8]| {
            !field.is_empty() && field.len() <= PLAIN_FIELD_BYTES_MAX && std::str::from_utf8(field).is_ok()
        };
        if !valid(authentication) || !valid(password) {
            return Err(SaslError::InvalidPlainField);
        }
        let authorization_identity = if authorization.is_empty() {
            None
        } else if valid(authorization) {
            Some(String::from_utf8_lossy(authorization).into_owned())
        } else {
            return Err(SaslError::InvalidPlainField);
        };
        Ok(Self {
            authorization_identity,
            authentication_identity: String::from_utf8_lossy(authentication).into_owned(),
            password: Secret::new(password.to_vec()),
        })
    }

    /// Builds the PLAIN message bytes (for clients and tests).
    pub fn to_message(&self) -> Vec<u8> {
        let mut message = Vec::new();
        if let Some(authorization) = &self.authorization_identity {
            message.extend_from_slice(authorization.as_bytes());
        }
        message.push(0);
        message.extend_from_slice(self.authentication_identity.as_bytes());
        message.push(0);
        message.extend_from_slice(self.password.expose());
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4616_example() {
        let SaslResponse::Data(message) = decode_response(b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm").unwrap() else {
            panic!("expected data");
        };
        let credentials = PlainCredentials::parse(message.expose()).unwrap();
        assert_eq!(credentials.authorization_identity, None);
        assert_eq!(credentials.authentication_identity, "tim");
        assert_eq!(credentials.password.expose(), b"tanstaaftanstaaf");
        assert_eq!(credentials.to_message(), message.expose());
    }

    #[test]
    fn cancel_and_empty() {
        assert_eq!(decode_response(b"*"), Ok(SaslResponse::Cancel));
        assert_eq!(decode_response(b"="), Ok(SaslResponse::Data(Secret::new(Vec::new()))));
        assert_eq!(decode_response(b"!!"), Err(SaslError::InvalidBase64));
    }

    #[test]
    fn response_line() {
        let limits = Limits::pop3();
        assert_eq!(parse_response_line(b"dGVzdA==", &limits), Ok(Parsed::NeedsMoreData));
        assert_eq!(
            parse_response_line(b"dGVzdA==\r\nNOOP", &limits),
            Ok(Parsed::Complete { value: SaslResponse::Data(Secret::new(b"test".to_vec())), consumed_bytes: 10 })
        );
        assert_eq!(
            parse_response_line(b"*\r\n", &limits),
            Ok(Parsed::Complete { value: SaslResponse::Cancel, consumed_bytes: 3 })
        );
        let rejected = parse_response_line(b"d=GV\r\n", &limits).unwrap_err();
        assert_eq!((rejected.error, rejected.consumed_bytes), (SaslError::InvalidBase64, 6));
    }

    #[test]
    fn malformed_plain() {
        assert_eq!(PlainCredentials::parse(b"a\0b"), Err(SaslError::MalformedPlain));
        assert_eq!(PlainCredentials::parse(b"a\0b\0c\0d"), Err(SaslError::MalformedPlain));
        assert_eq!(PlainCredentials::parse(b"\0\0pw"), Err(SaslError::InvalidPlainField));
        assert_eq!(PlainCredentials::parse(b"\0u\0\xff"), Err(SaslError::InvalidPlainField));
    }
}
