//! Reading ahead for a FETCH of many bodies: the next messages' reads are in flight while one
//! is written out, and the answers come back in the order asked.
//!
//! One read at a time left a client syncing a mailbox (`UID FETCH 1:* BODY.PEEK[]`) one disk
//! latency per message, with the disk otherwise idle. The window is bounded in messages and in
//! the bytes of their bodies, so a session holds at most its largest message plus
//! [`READ_AHEAD_BYTES`] (before, at most its largest message).

use std::future::Future;
use std::pin::Pin;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;

/// Most reads in flight for one command.
pub(super) const READ_AHEAD_MESSAGES: usize = 8;
/// Most bytes of bodies in flight for one command; a larger message is read alone.
pub(super) const READ_AHEAD_BYTES: u64 = 1024 * 1024;

/// A read in flight: its item, its size, and the read's answer once done.
type Read<'a, T, O> = Pin<Box<dyn Future<Output = (T, u64, O)> + 'a>>;

/// The window's bounds (the constants above, smaller in tests).
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) messages: usize,
    pub(super) bytes: u64,
}

impl Window {
    pub(super) const DEFAULT: Self = Self { messages: READ_AHEAD_MESSAGES, bytes: READ_AHEAD_BYTES };
}

/// Reads of `items` (each with its size in bytes) started by `read`, answered in order.
pub(super) struct ReadAhead<'a, T, O, R> {
    waiting: std::iter::Peekable<std::vec::IntoIter<(T, u64)>>,
    read: R,
    in_flight: FuturesOrdered<Read<'a, T, O>>,
    in_flight_bytes: u64,
    window: Window,
}

impl<'a, T, O, R, F> ReadAhead<'a, T, O, R>
where
    T: Copy + 'a,
    R: FnMut(T) -> F,
    F: Future<Output = O> + 'a,
{
    pub(super) fn new(items: Vec<(T, u64)>, window: Window, read: R) -> Self {
        Self {
            waiting: items.into_iter().peekable(),
            read,
            in_flight: FuturesOrdered::new(),
            in_flight_bytes: 0,
            window,
        }
    }

    /// The next item and its read's answer, in the order of `items`; `None` after the last.
    pub(super) async fn next(&mut self) -> Option<(T, O)> {
        self.start_reads();
        let (item, size, answer) = self.in_flight.next().await?;
        self.in_flight_bytes -= size;
        self.start_reads();
        Some((item, answer))
    }

    /// Starts reads while the window has room; an empty window always takes the next one.
    fn start_reads(&mut self) {
        while let Some(&(item, size)) = self.waiting.peek() {
            let room = self.in_flight.is_empty()
                || (self.in_flight.len() < self.window.messages
                    && self.in_flight_bytes.saturating_add(size) <= self.window.bytes);
            if !room {
                break;
            }
            self.waiting.next();
            let read = (self.read)(item);
            self.in_flight.push_back(Box::pin(async move { (item, size, read.await) }));
            self.in_flight_bytes += size;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use futures_util::FutureExt as _;
    use proptest::prelude::*;

    use super::*;

    /// Reads that finish only when the test answers them.
    #[derive(Default)]
    struct Reads {
        unanswered: RefCell<Vec<(u32, flume::Sender<String>)>>,
        started: RefCell<Vec<u32>>,
    }

    impl Reads {
        fn read(&self, item: u32) -> impl Future<Output = Result<String, flume::RecvError>> + use<> {
            let (sender, receiver) = flume::bounded(1);
            self.unanswered.borrow_mut().push((item, sender));
            self.started.borrow_mut().push(item);
            receiver.into_recv_async()
        }

        /// Answers every read started so far, the last started first.
        fn answer_all_in_reverse(&self) {
            for (item, sender) in self.unanswered.borrow_mut().drain(..).rev() {
                let _ = sender.send(format!("body {item}"));
            }
        }
    }

    /// What a run yields, and the most reads and bytes that were in flight at once (started,
    /// not yet yielded).
    struct Run {
        answers: Vec<(u32, String)>,
        most_in_flight: usize,
        most_bytes_in_flight: u64,
    }

    /// Drives a read-ahead over items `0..sizes.len()`, answering the reads in flight newest
    /// first whenever it waits.
    fn run(sizes: &[u64], window: Window) -> Run {
        let reads = Rc::new(Reads::default());
        let items = sizes.iter().enumerate().map(|(item, size)| (item as u32, *size)).collect();
        let reader = Rc::clone(&reads);
        let mut read_ahead = ReadAhead::new(items, window, move |item| reader.read(item));
        let mut run = Run { answers: Vec::new(), most_in_flight: 0, most_bytes_in_flight: 0 };
        for _ in 0..10 * sizes.len() + 10 {
            let next = read_ahead.next().now_or_never();
            let waiting = next.is_none();
            match next {
                Some(Some((item, answer))) => run.answers.push((item, answer.unwrap_or_default())),
                Some(None) => return run,
                None => {}
            }
            let in_flight = &reads.started.borrow()[run.answers.len()..];
            run.most_in_flight = run.most_in_flight.max(in_flight.len());
            let bytes = in_flight.iter().map(|item| sizes[*item as usize]).sum::<u64>();
            run.most_bytes_in_flight = run.most_bytes_in_flight.max(bytes);
            if waiting {
                reads.answer_all_in_reverse();
            }
        }
        panic!("the read-ahead did not finish");
    }

    fn in_order(count: usize) -> Vec<(u32, String)> {
        (0..count as u32).map(|item| (item, format!("body {item}"))).collect()
    }

    #[test]
    fn reads_run_ahead_up_to_the_window_and_answer_in_order() {
        let run = run(&[4096; 20], Window::DEFAULT);
        assert_eq!(run.answers, in_order(20));
        assert_eq!(run.most_in_flight, READ_AHEAD_MESSAGES);
    }

    #[test]
    fn a_message_larger_than_the_byte_window_is_read_alone() {
        let window = Window { messages: 8, bytes: 10_000 };
        let mixed = run(&[100, 50_000, 100, 100], window);
        assert_eq!(mixed.answers, in_order(4));
        assert_eq!(mixed.most_bytes_in_flight, 50_000, "the large one waits for an empty window, and reads alone");
        let large = run(&[50_000, 50_000, 50_000], window);
        assert_eq!(large.answers, in_order(3));
        assert_eq!(large.most_in_flight, 1);
    }

    proptest! {
        #[test]
        fn any_items_come_back_in_order_within_the_window(
            sizes in prop::collection::vec(0_u64..5_000, 0..40),
            messages in 1_usize..10,
            bytes in 0_u64..20_000,
        ) {
            let run = run(&sizes, Window { messages, bytes });
            prop_assert_eq!(run.answers, in_order(sizes.len()));
            prop_assert!(run.most_in_flight <= messages);
            let largest = sizes.iter().copied().max().unwrap_or(0);
            prop_assert!(run.most_bytes_in_flight <= bytes.max(largest));
        }
    }
}
