//! SEARCH and UID SEARCH: each message is tested from the view first; its body is read from
//! the engine only when a header or body key decides (read ahead, `read_ahead.rs`), within a
//! budget of messages and bytes per command: a search that would read more fails with
//! `NO [LIMIT]` before it reads anything.

use mailvault_engine::EngineError;

use super::client::Client;
use super::completion::Completion;
use super::read_ahead::{ReadAhead, Window};
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
    let engine = client.engine();
    let messages = state.view.messages();
    let count = state.view.count();
    let largest_uid = messages.last().map_or(0, |message| message.uid);
    let candidate =
        |index: usize| Candidate { sequence: index as u32 + 1, count, largest_uid, message: &messages[index] };
    let mut found = Vec::new();
    let mut undecided = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        match matches_all(criteria, &candidate(index), None) {
            Some(true) => found.push(index),
            Some(false) => {}
            None => undecided.push((index, message.size)),
        }
    }
    let bytes_to_read = undecided.iter().fold(0_u64, |total, (_, size)| total.saturating_add(*size));
    if undecided.len() > options.search_messages_max || bytes_to_read > options.search_bytes_max {
        return Completion::no("This search would read too much mail; narrow it down").with_code(ResponseCode::Limit);
    }
    let (account, mailbox) = (&state.account, &state.view.name);
    let mut bodies =
        ReadAhead::new(undecided, Window::DEFAULT, |index: usize| engine.fetch(account, mailbox, messages[index].uid));
    while let Some((index, fetched)) = bodies.next().await {
        let body = match fetched {
            Ok(fetched) => fetched.body,
            Err(EngineError::NoSuchMessage(_)) => continue,
            Err(error) => return Completion::from_engine(&error),
        };
        if matches_all(criteria, &candidate(index), Some(&Content::new(&body))).unwrap_or(false) {
            found.push(index);
        }
    }
    found.sort_unstable();
    let found: Vec<u32> =
        found.into_iter().map(|index| if uid { messages[index].uid } else { index as u32 + 1 }).collect();
    imap::write_search(&found, &mut client.output);
    Completion::ok(if uid { "UID SEARCH completed" } else { "SEARCH completed" })
}
