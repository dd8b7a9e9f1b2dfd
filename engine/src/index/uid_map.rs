//! A mailbox's messages by uid.
//!
//! Uids are handed out in increasing order and most messages stay, so a mailbox's uids are
//! mostly dense: a deque indexed by `uid - first` then finds a message with one cache miss.
//! The `BTreeMap` it replaces took several on a random uid, 5.4% of a shard's samples in random
//! fetches (bench/README.md, session 12). A map whose uids turn sparse (most of them expunged,
//! or a far jump) moves to a `BTreeMap`, so memory stays proportional to the messages held, and
//! moves back once it is dense again.

use std::collections::{BTreeMap, VecDeque};

/// Empty slots a dense map may hold beyond one per message (so small maps never flip).
const SLACK_SLOTS: usize = 64;

#[derive(Debug, Clone)]
pub struct UidMap<V> {
    layout: Layout<V>,
}

#[derive(Debug, Clone)]
enum Layout<V> {
    /// `slots[i]` holds uid `first + i`; the first and last slots are occupied (when any is).
    Dense {
        first: u32,
        slots: VecDeque<Option<V>>,
        len: usize,
    },
    Sparse(BTreeMap<u32, V>),
}

impl<V> Default for UidMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether `slots` slots may hold `len` messages densely.
fn dense_enough(slots: usize, len: usize) -> bool {
    slots <= len.saturating_mul(2).saturating_add(SLACK_SLOTS)
}

impl<V> UidMap<V> {
    pub fn new() -> Self {
        Self { layout: Layout::Dense { first: 0, slots: VecDeque::new(), len: 0 } }
    }

    pub fn len(&self) -> usize {
        match &self.layout {
            Layout::Dense { len, .. } => *len,
            Layout::Sparse(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, uid: u32) -> Option<&V> {
        match &self.layout {
            Layout::Dense { first, slots, .. } => {
                slots.get(usize::try_from(uid.checked_sub(*first)?).ok()?).and_then(Option::as_ref)
            }
            Layout::Sparse(map) => map.get(&uid),
        }
    }

    pub fn get_mut(&mut self, uid: u32) -> Option<&mut V> {
        match &mut self.layout {
            Layout::Dense { first, slots, .. } => {
                slots.get_mut(usize::try_from(uid.checked_sub(*first)?).ok()?).and_then(Option::as_mut)
            }
            Layout::Sparse(map) => map.get_mut(&uid),
        }
    }

    /// Inserts or replaces; answers the value `uid` held.
    pub fn insert(&mut self, uid: u32, value: V) -> Option<V> {
        if let Layout::Dense { first, slots, len } = &mut self.layout {
            if slots.is_empty() {
                *first = uid;
                slots.push_back(Some(value));
                *len = 1;
                return None;
            }
            let last = *first + (slots.len() - 1) as u32;
            let span = (last.max(uid) - (*first).min(uid)) as usize + 1;
            if dense_enough(span, *len + 1) {
                if uid < *first {
                    for _ in uid..*first {
                        slots.push_front(None);
                    }
                    *first = uid;
                } else if uid > last {
                    slots.resize_with(span, || None);
                }
                let previous = slots[(uid - *first) as usize].replace(value);
                if previous.is_none() {
                    *len += 1;
                }
                return previous;
            }
        }
        let mut map = self.take_as_sorted_map();
        let previous = map.insert(uid, value);
        self.layout = Layout::Sparse(map);
        self.make_dense_if_it_fits();
        previous
    }

    pub fn remove(&mut self, uid: u32) -> Option<V> {
        match &mut self.layout {
            Layout::Dense { first, slots, len } => {
                let index = usize::try_from(uid.checked_sub(*first)?).ok()?;
                let removed = slots.get_mut(index)?.take()?;
                *len -= 1;
                // Keep the ends occupied: a mailbox emptied from its oldest end (POP3) stays small.
                while slots.front().is_some_and(Option::is_none) {
                    slots.pop_front();
                    *first += 1;
                }
                while slots.back().is_some_and(Option::is_none) {
                    slots.pop_back();
                }
                if !dense_enough(slots.len(), *len) {
                    self.layout = Layout::Sparse(self.take_as_sorted_map());
                }
                Some(removed)
            }
            Layout::Sparse(map) => {
                let removed = map.remove(&uid);
                self.make_dense_if_it_fits();
                removed
            }
        }
    }

    /// Messages in uid order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &V)> {
        let (dense, sparse) = match &self.layout {
            Layout::Dense { first, slots, .. } => {
                let first = *first;
                let occupied = slots
                    .iter()
                    .enumerate()
                    .filter_map(move |(index, slot)| slot.as_ref().map(|value| (first + index as u32, value)));
                (Some(occupied), None)
            }
            Layout::Sparse(map) => (None, Some(map.iter().map(|(uid, value)| (*uid, value)))),
        };
        dense.into_iter().flatten().chain(sparse.into_iter().flatten())
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, value)| value)
    }

    /// Messages in uid order, taken out of the map.
    pub fn into_entries(mut self) -> impl Iterator<Item = (u32, V)> {
        self.take_as_sorted_map().into_iter()
    }

    /// Empties the map into a `BTreeMap`.
    fn take_as_sorted_map(&mut self) -> BTreeMap<u32, V> {
        match std::mem::replace(&mut self.layout, Layout::Sparse(BTreeMap::new())) {
            Layout::Dense { first, slots, .. } => slots
                .into_iter()
                .enumerate()
                .filter_map(|(index, slot)| slot.map(|value| (first + index as u32, value)))
                .collect(),
            Layout::Sparse(map) => map,
        }
    }

    fn make_dense_if_it_fits(&mut self) {
        let Layout::Sparse(map) = &mut self.layout else { return };
        let (Some((&first, _)), Some((&last, _))) = (map.first_key_value(), map.last_key_value()) else {
            return;
        };
        // Back only well inside the dense bound, so a map at the edge does not flip back and
        // forth on every insert and remove.
        let span = (last - first) as usize + 1;
        if span > map.len().saturating_add(SLACK_SLOTS) {
            return;
        }
        let len = map.len();
        let mut slots: VecDeque<Option<V>> = std::iter::repeat_with(|| None).take(span).collect();
        for (uid, value) in std::mem::take(map) {
            slots[(uid - first) as usize] = Some(value);
        }
        self.layout = Layout::Dense { first, slots, len };
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        Insert(u32),
        Remove(u32),
        /// Appends the next `count` uids after the highest, as deliveries do.
        Append(u16),
        /// Removes the lowest `count`, as a POP3 client deleting its oldest mail does.
        RemoveOldest(u16),
    }

    /// Uids near each other (dense runs, holes) and now and then far away (sparse).
    fn uid() -> impl Strategy<Value = u32> {
        prop_oneof![8 => 0..400_u32, 1 => any::<u32>()]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => uid().prop_map(Step::Insert),
            3 => uid().prop_map(Step::Remove),
            2 => (1..200_u16).prop_map(Step::Append),
            2 => (1..200_u16).prop_map(Step::RemoveOldest),
        ]
    }

    /// The memory bound: a dense map holds at most two slots per message plus the slack.
    fn check_layout<V>(map: &UidMap<V>) -> Result<(), TestCaseError> {
        if let Layout::Dense { slots, len, .. } = &map.layout {
            prop_assert!(dense_enough(slots.len(), *len), "{} slots for {} messages", slots.len(), len);
            prop_assert_eq!(slots.iter().filter(|slot| slot.is_some()).count(), *len);
            if !slots.is_empty() {
                prop_assert!(slots.front().is_some_and(Option::is_some) && slots.back().is_some_and(Option::is_some));
            }
        }
        Ok(())
    }

    proptest! {
        /// Any sequence of inserts and removals leaves the same messages, in the same order, as a
        /// `BTreeMap` given the same sequence, and never more slots than the bound allows.
        #[test]
        fn behaves_as_a_sorted_map(steps in proptest::collection::vec(step(), 1..120)) {
            let mut map = UidMap::new();
            let mut model = BTreeMap::new();
            for (index, step) in steps.into_iter().enumerate() {
                let value = index as u64;
                match step {
                    Step::Insert(uid) => prop_assert_eq!(map.insert(uid, value), model.insert(uid, value)),
                    Step::Remove(uid) => prop_assert_eq!(map.remove(uid), model.remove(&uid)),
                    Step::Append(count) => {
                        let next = model.last_key_value().map_or(1, |(uid, _)| uid.saturating_add(1));
                        for uid in (next..).take(usize::from(count)) {
                            prop_assert_eq!(map.insert(uid, value), model.insert(uid, value));
                        }
                    }
                    Step::RemoveOldest(count) => {
                        let oldest: Vec<u32> = model.keys().copied().take(usize::from(count)).collect();
                        for uid in oldest {
                            prop_assert_eq!(map.remove(uid), model.remove(&uid));
                        }
                    }
                }
                check_layout(&map)?;
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(map.is_empty(), model.is_empty());
                let entries: Vec<(u32, u64)> = map.iter().map(|(uid, value)| (uid, *value)).collect();
                let expected: Vec<(u32, u64)> = model.iter().map(|(uid, value)| (*uid, *value)).collect();
                prop_assert_eq!(entries, expected);
                for uid in model.keys().take(8).chain([0, 1, 399, u32::MAX].iter()) {
                    prop_assert_eq!(map.get(*uid), model.get(uid));
                }
            }
            if let Some((&uid, _)) = model.first_key_value() {
                *map.get_mut(uid).expect("present") += 1;
                *model.get_mut(&uid).expect("present") += 1;
            }
            let taken: Vec<(u32, u64)> = map.into_entries().collect();
            prop_assert_eq!(taken, model.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_delivered_mailbox_is_dense_and_one_far_uid_makes_it_sparse() {
        let mut map = UidMap::new();
        for uid in 1..=1000 {
            map.insert(uid, ());
        }
        assert!(matches!(&map.layout, Layout::Dense { first: 1, slots, len: 1000 } if slots.len() == 1000));
        map.insert(u32::MAX, ());
        assert!(matches!(map.layout, Layout::Sparse(_)), "four billion empty slots were not allocated");
        map.remove(u32::MAX);
        assert!(matches!(map.layout, Layout::Dense { .. }), "dense again without the far uid");
    }

    #[test]
    fn a_mailbox_emptied_from_its_oldest_end_keeps_only_its_messages() {
        let mut map = UidMap::new();
        for uid in 1..=1000 {
            map.insert(uid, ());
        }
        for uid in 1..=990 {
            map.remove(uid);
        }
        assert!(matches!(&map.layout, Layout::Dense { first: 991, slots, len: 10 } if slots.len() == 10));
    }
}
