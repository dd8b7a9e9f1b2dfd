//! The tagged result of a command (`OK`, `NO`, `BAD` with an optional response code), and how
//! engine errors become one without telling the client more than it should know.

use std::borrow::Cow;

use mailvault_engine::EngineError;

use crate::proto::imap::{ResponseCode, Status};

/// What the tagged response of a command will say. Handlers return it; the state machine
/// writes pending untagged updates first, then this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Completion {
    pub(super) status: Status,
    pub(super) code: Option<ResponseCode>,
    pub(super) text: Cow<'static, str>,
}

impl Completion {
    pub(super) fn ok(text: impl Into<Cow<'static, str>>) -> Self {
        Self { status: Status::Ok, code: None, text: text.into() }
    }

    pub(super) fn no(text: impl Into<Cow<'static, str>>) -> Self {
        Self { status: Status::No, code: None, text: text.into() }
    }

    pub(super) fn bad(text: impl Into<Cow<'static, str>>) -> Self {
        Self { status: Status::Bad, code: None, text: text.into() }
    }

    pub(super) fn with_code(mut self, code: ResponseCode) -> Self {
        self.code = Some(code);
        self
    }

    /// The reply to a failed engine call. Client mistakes (no such mailbox, bad name) are
    /// explained; our own failures are logged and reported without detail.
    pub(super) fn from_engine(error: &EngineError) -> Self {
        match error {
            EngineError::NoSuchMailbox(_) => Self::no("No such mailbox").with_code(ResponseCode::Nonexistent),
            EngineError::MailboxExists(_) => Self::no("Mailbox already exists").with_code(ResponseCode::AlreadyExists),
            EngineError::NoSuchMessage(_) => Self::no("No such message"),
            EngineError::AccountClosed { .. } => Self::no("Account closed"),
            EngineError::InvalidInput { what, reason } => Self::no(format!("Invalid {what}: {reason}")),
            EngineError::MessageTooLarge { limit, .. } => {
                Self::no(format!("Message is larger than {limit} bytes")).with_code(ResponseCode::Limit)
            }
            // Temporary (RFC 5530): the store takes writes again once space is freed.
            EngineError::StorageFull { .. } => {
                Self::no("The server is out of disk space; try again later").with_code(ResponseCode::Unavailable)
            }
            other => {
                tracing::error!(error = %other, "IMAP command failed in the engine");
                Self::no("Internal server error; try again later").with_code(ResponseCode::ServerBug)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_a_temporary_refusal_not_a_server_bug() {
        let refusal = Completion::from_engine(&EngineError::StorageFull { shard_id: 1 });
        assert_eq!(refusal.status, Status::No);
        assert_eq!(refusal.code, Some(ResponseCode::Unavailable), "RFC 5530: the client may retry later");
        assert!(refusal.text.contains("out of disk space"), "{}", refusal.text);
    }
}
