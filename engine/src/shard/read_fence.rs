//! Which reads may be answered now. While commits are in flight the index is ahead of the
//! disk, and a read answered from it could show a change that a crash then takes back (a
//! message listed, then lost, and its uid given to the next message delivered). A read of one
//! account is answered at once if no batch that is not yet durable changed that account;
//! other reads (of one account changed in flight, or of the whole shard) wait until the
//! pipeline drains (see `Shard::run`). So under a stream of appends, reads of the accounts not
//! being written to cost the pipeline nothing.

use std::collections::HashMap;

use super::request::{Mutation, Query};

/// Batches are numbered as they are planned; the fence knows which are durable.
#[derive(Debug, Default)]
pub(super) struct ReadFence {
    /// The number of the batch being planned (the next one to start).
    planning: u64,
    /// Every batch numbered below this one is durable (or answered with the shard's failure).
    durable_below: u64,
    /// Accounts a batch not yet durable may have changed, with the last such batch's number.
    changed: HashMap<String, u64>,
}

impl ReadFence {
    /// A mutation of this account is planned into the current batch.
    pub(super) fn note_change(&mut self, account: &str) {
        match self.changed.get_mut(account) {
            Some(batch) => *batch = self.planning,
            None => {
                self.changed.insert(account.to_owned(), self.planning);
            }
        }
    }

    /// The current batch starts (is committed); returns its number.
    pub(super) fn start_batch(&mut self) -> u64 {
        let number = self.planning;
        self.planning += 1;
        number
    }

    /// Batch `number` and every one before it are durable.
    pub(super) fn durable_through(&mut self, number: u64) {
        self.durable_below = self.durable_below.max(number + 1);
        if self.durable_below == self.planning {
            // Nothing planned is in flight: no account has a change that is not durable.
            self.changed.clear();
        }
    }

    /// Whether `query` reads one account that no batch still in flight, nor the one being
    /// planned, has changed.
    pub(super) fn reads_only_durable_account(&self, query: &Query) -> bool {
        query.account().is_some_and(|account| self.changed.get(account).is_none_or(|&batch| batch < self.durable_below))
    }
}

impl Query {
    /// The one account this read looks at; `None` for reads of the whole shard.
    fn account(&self) -> Option<&str> {
        match self {
            Query::Mailboxes { account, .. }
            | Query::Messages { account, .. }
            | Query::Fetch { account, .. }
            | Query::Deleted { account, .. }
            | Query::Credentials { account, .. }
            | Query::AccessLog { account, .. } => Some(account),
            Query::Accounts(_) | Query::Stats(_) | Query::AccountStates(_) | Query::DuePurges(_) => None,
        }
    }
}

impl Mutation {
    /// The account this mutation changes (every mutation changes exactly one).
    pub(super) fn account(&self) -> &str {
        match self {
            Mutation::CreateAccount { account }
            | Mutation::CreateMailbox { account, .. }
            | Mutation::RenameMailbox { account, .. }
            | Mutation::DeleteMailbox { account, .. }
            | Mutation::Append { account, .. }
            | Mutation::ChangeFlags { account, .. }
            | Mutation::Copy { account, .. }
            | Mutation::Expunge { account, .. }
            | Mutation::Restore { account, .. }
            | Mutation::SetPassword { account, .. }
            | Mutation::AddAppPassword { account, .. }
            | Mutation::RevokeAppPasswords { account }
            | Mutation::RecordAccess { account, .. }
            | Mutation::PruneDeleted { account }
            | Mutation::CloseAccount { account, .. }
            | Mutation::ReopenAccount { account }
            | Mutation::PurgeAccount { account } => account,
        }
    }
}
