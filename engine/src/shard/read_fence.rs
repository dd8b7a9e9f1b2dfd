//! Which reads may be answered now. While commits are in flight the index is ahead of the
//! disk, and a read answered from it could show a change that a crash then takes back (a
//! message listed, then lost, and its uid given to the next message delivered). A read of one
//! account is answered at once if no batch that is not yet durable changed that account;
//! other reads (of one account changed in flight, or of the whole shard) wait until the
//! pipeline drains (see `Shard::run`). So under a stream of appends, reads of the accounts not
//! being written to cost the pipeline nothing.

use std::collections::HashMap;

use super::request::Query;

/// Under a stream of commits that never drains, the accounts changed by batches already
/// durable are dropped from the fence once it holds this many, or twice as many as after the
/// last such pass (so each pass is paid for by the insertions before it).
const PRUNE_AT_LEAST: usize = 1024;

/// Batches are numbered as they are planned; the fence knows which are durable.
#[derive(Debug)]
pub(super) struct ReadFence {
    /// The number of the batch being planned (the next one to start).
    planning: u64,
    /// Every batch numbered below this one is durable (or answered with the shard's failure).
    durable_below: u64,
    /// Accounts a batch not yet durable may have changed, with the last such batch's number
    /// (and, until the next pruning, some whose batch is durable by now).
    changed: HashMap<String, u64>,
    prune_at: usize,
}

impl Default for ReadFence {
    fn default() -> Self {
        Self { planning: 0, durable_below: 0, changed: HashMap::new(), prune_at: PRUNE_AT_LEAST }
    }
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
        } else if self.changed.len() >= self.prune_at {
            let durable_below = self.durable_below;
            self.changed.retain(|_, batch| *batch >= durable_below);
            self.prune_at = (2 * self.changed.len()).max(PRUNE_AT_LEAST);
        }
    }

    /// Whether `query` reads one account that no batch still in flight, nor the one being
    /// planned, has changed.
    pub(super) fn reads_only_durable_account(&self, query: &Query) -> bool {
        query.account().is_some_and(|account| self.changed.get(account).is_none_or(|&batch| batch < self.durable_below))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(account: &str) -> Query {
        Query::Mailboxes { account: account.to_owned(), reply: flume::unbounded().0 }
    }

    #[test]
    fn a_read_waits_only_for_the_batches_that_changed_its_account() {
        let mut fence = ReadFence::default();
        fence.note_change("ann");
        assert!(!fence.reads_only_durable_account(&listing("ann")), "changed by the batch being planned");
        assert!(fence.reads_only_durable_account(&listing("bob")));
        assert!(!fence.reads_only_durable_account(&Query::Stats(flume::unbounded().0)), "a read of the shard");
        let first = fence.start_batch();
        fence.note_change("bob");
        let second = fence.start_batch();
        fence.durable_through(first);
        assert!(fence.reads_only_durable_account(&listing("ann")));
        assert!(!fence.reads_only_durable_account(&listing("bob")), "its batch is still in flight");
        fence.durable_through(second);
        assert!(fence.reads_only_durable_account(&listing("bob")));
        assert!(fence.changed.is_empty(), "nothing in flight: nothing kept");
    }

    #[test]
    fn accounts_whose_changes_are_durable_are_dropped_while_commits_never_drain() {
        let mut fence = ReadFence::default();
        let mut last = fence.start_batch(); // one batch always in flight
        for account in 0..10 * PRUNE_AT_LEAST {
            fence.note_change(&account.to_string());
            let number = fence.start_batch();
            fence.durable_through(last);
            last = number;
            assert!(!fence.reads_only_durable_account(&listing(&account.to_string())));
        }
        assert!(fence.changed.len() <= 2 * PRUNE_AT_LEAST, "{} accounts kept", fence.changed.len());
        assert!(fence.reads_only_durable_account(&listing("0")));
    }
}
