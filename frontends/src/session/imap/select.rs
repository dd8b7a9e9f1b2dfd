//! SELECT and EXAMINE: open a mailbox, tell the client its size, flags and uids
//! (RFC 3501 §6.3.1), and enter the selected state; on failure, leave it.

use super::client::Client;
use super::completion::Completion;
use super::state::{Authenticated, Selected, State};
use super::view::MailboxView;
use crate::proto::imap::{self, ResponseCode, Status, Tag};
use crate::session::SessionIo;

pub(super) async fn open<C: SessionIo>(
    account: String,
    mailbox: &str,
    read_only: bool,
    tag: &Tag,
    client: &mut Client<'_, C>,
) -> State {
    let (info, listing) = match client.engine().list_messages(&account, mailbox).await {
        Ok(listed) => listed,
        Err(error) => {
            // RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected.
            client.complete(tag, &Completion::from_engine(&error));
            return State::Authenticated(Authenticated { account });
        }
    };
    let view = MailboxView::new(info.name.clone(), read_only, &info, listing);
    let out = &mut client.output;
    imap::write_flags(&view.defined_flags(), out);
    imap::write_exists(view.count(), out);
    imap::write_recent(0, out);
    if let Some(first_unseen) = view.first_unseen() {
        imap::write_untagged(Status::Ok, Some(&ResponseCode::Unseen(first_unseen)), "First unseen", out);
    }
    imap::write_untagged(Status::Ok, Some(&ResponseCode::UidValidity(info.uid_validity)), "UIDs valid", out);
    imap::write_untagged(Status::Ok, Some(&ResponseCode::UidNext(info.uid_next)), "Predicted next UID", out);
    let permanent = if read_only {
        ResponseCode::PermanentFlags { flags: Vec::new(), keywords_allowed: false }
    } else {
        ResponseCode::PermanentFlags { flags: view.defined_flags(), keywords_allowed: true }
    };
    imap::write_untagged(Status::Ok, Some(&permanent), "Flags permitted", out);
    let (code, text) = if read_only {
        (ResponseCode::ReadOnly, "EXAMINE completed")
    } else {
        (ResponseCode::ReadWrite, "SELECT completed")
    };
    client.complete(tag, &Completion::ok(text).with_code(code));
    State::Selected(Selected { account, view })
}
