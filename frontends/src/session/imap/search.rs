//! SEARCH and UID SEARCH: each message is tested from the view first; its body is read from
//! the engine only when a header or body key decides, within a budget of messages and bytes
//! per command (past it, the command fails with `NO [LIMIT]` rather than running on).

use mailvault_engine::EngineError;

use super::client::Client;
use super::completion::Completion;
use super::search_match::{Candidate, Content, matches_all};
use super::state::Selected;
use crate::proto::imap::{self, ResponseCode, SearchKey};
use crate::session::SessionIo;

pub(super) async fn run<C: SessionIo>(
    state: &Selected,
    uid: bool,
    criteria: &[SearchKey],
    client: &mut Client<'_, C>,
) -> Completion {
    let options = client.options;
    let engine = client.engine().clone();
    let messages = state.view.messages();
    let count = state.view.count();
    let largest_uid = messages.last().map_or(0, |message| message.uid);
    let (mut bodies_read, mut bytes_read) = (0_usize, 0_u64);
    let mut found = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let candidate = Candidate { sequence: index as u32 + 1, count, largest_uid, message };
        let matched = if let Some(decided) = matches_all(criteria, &candidate, None) {
            decided
        } else {
            bodies_read += 1;
            bytes_read = bytes_read.saturating_add(message.size);
            if bodies_read > options.search_messages_max || bytes_read > options.search_bytes_max {
                return Completion::no("This search would read too much mail; narrow it down")
                    .with_code(ResponseCode::Limit);
            }
            let body = match engine.fetch(&state.account, &state.view.name, message.uid).await {
                Ok(fetched) => fetched.body,
                Err(EngineError::NoSuchMessage(_)) => continue,
                Err(error) => return Completion::from_engine(&error),
            };
            matches_all(criteria, &candidate, Some(&Content::new(&body))).unwrap_or(false)
        };
        if matched {
            found.push(if uid { message.uid } else { candidate.sequence });
        }
    }
    imap::write_search(&found, &mut client.output);
    Completion::ok(if uid { "UID SEARCH completed" } else { "SEARCH completed" })
}
