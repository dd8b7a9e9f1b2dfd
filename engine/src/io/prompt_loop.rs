//! A shard's event loop: reads go to the kernel as soon as they are asked for, not after the
//! whole round of tasks that were ready.
//!
//! compio's own loop runs up to 61 ready tasks, then submits the IO they queued, reaps
//! completions and polls the shard's request loop. The disks we measured complete a burst of
//! reads at once, and a shard then runs a task per completed read (decrypt, answer, ~10 µs
//! each): the reads that the answered callers asked for next were taken and submitted only
//! after the whole burst was answered, and the disk idled meanwhile. Fetches and the disk took
//! turns instead of overlapping (bench/README.md, session 11: 4 KiB random fetches at 0.51 of
//! fio's rate in compio's loop, 0.57-0.65 in this one).
//!
//! This loop runs the same rounds, but ends one early once a task has answered a read or
//! started one ([`want_prompt_round`]): then it submits at once, and the request loop takes
//! the next requests and starts their reads. Other work keeps compio's rounds, so that a
//! commit's many short tasks share a submission: ending every round after one task took the
//! same fetch rate for a third more of the shard's CPU (a system call per task).
//!
//! A fetch whose caller is a task on the shard's own thread (`Engine::run_on_shard`) does not
//! end the round when answered: that caller runs in this round anyway, and its next request
//! reaches the request loop when the round ends. Ending it there cost a wake and a driver poll
//! per fetch: without them one shard fetched 1.16× as fast, two the same (bench/README.md,
//! session 21).

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use compio::runtime::Runtime;

/// Tasks per round at most, as in compio's loop.
const TASKS_PER_ROUND: usize = 61;

thread_local! {
    /// Set when a read was answered or started since the round began.
    static PROMPT_ROUND_WANTED: Cell<bool> = const { Cell::new(false) };
}

/// Ends the loop's current round after this task: a read was answered (its caller is likely
/// to ask for the next one) or started (it waits to be submitted).
pub fn want_prompt_round() {
    PROMPT_ROUND_WANTED.set(true);
}

/// A runtime to run [`block_on_prompt`] on (built with [`crate::io::build_runtime`]): it hands
/// out ready tasks one at a time, and the loop makes the rounds.
pub fn prompt_runtime_builder() -> compio::runtime::RuntimeBuilder {
    let mut builder = compio::runtime::RuntimeBuilder::new();
    builder.event_interval(1);
    builder
}

/// Runs `future` to completion on `runtime` (built by [`prompt_runtime_builder`]): compio's
/// loop, with rounds that end early for reads. Unlike compio's `block_on`, a panic of
/// `future` is not caught here: it unwinds the shard's thread, which drops the runtime and its
/// tasks (shard code does not panic; its errors are values).
pub fn block_on_prompt<F: Future>(runtime: &Runtime, future: F) -> F::Output {
    runtime.enter(|| {
        let waker = runtime.waker();
        let mut context = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                runtime.run();
                return output;
            }
            let mut prompt = false;
            let mut tasks_ready = true;
            for _ in 0..TASKS_PER_ROUND {
                prompt = PROMPT_ROUND_WANTED.take();
                if prompt {
                    break;
                }
                tasks_ready = runtime.run();
                if !tasks_ready {
                    break;
                }
            }
            if prompt {
                // Marked as woken first, so the driver submits and reaps without waiting: a
                // zero-timeout wait still sleeps and is rescheduled, which costs more than the
                // task before it.
                waker.wake_by_ref();
                runtime.poll_with(Some(Duration::ZERO));
            } else if tasks_ready {
                // A full round: compio's poll, wait included. With the wait skipped here too,
                // 4 KiB appends measured 8% fewer (bench/README.md, session 11).
                runtime.poll_with(Some(Duration::ZERO));
            } else {
                // Nothing ready: submit, and wait for a completion, a timer or a wake.
                runtime.poll();
            }
        }
    })
}

/// Spawns `future` after polling it once here, so the IO it starts with is queued now rather
/// than when the runtime first gets to its task (behind every task ready before it).
///
/// The first poll's waker wakes nothing; that is sound because the spawned task polls the
/// future again before it can be woken for anything (a spawned task is ready at once), and
/// that poll registers the task's waker, or finds the IO done.
pub fn spawn_started<F: Future<Output = ()> + 'static>(future: F) {
    let mut future = Box::pin(future);
    if future.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_ready() {
        return;
    }
    want_prompt_round();
    compio::runtime::spawn(future).detach();
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use compio::io::AsyncReadAtExt;

    use super::*;

    type Log = Rc<RefCell<Vec<&'static str>>>;

    /// Runs three tasks under a request loop that logs each time the loop polls it, until all
    /// three ran; the first task asks for a prompt round if `first_wants_prompt`.
    fn order_of_polls(first_wants_prompt: bool) -> Vec<&'static str> {
        let runtime = crate::io::build_runtime(&mut prompt_runtime_builder()).expect("runtime");
        let log = Log::default();
        let spawned = std::cell::Cell::new(false);
        block_on_prompt(
            &runtime,
            std::future::poll_fn(|context| {
                log.borrow_mut().push("loop");
                if !spawned.replace(true) {
                    for (name, prompt) in [("first", first_wants_prompt), ("second", false), ("third", false)] {
                        let log = Rc::clone(&log);
                        compio::runtime::spawn(async move {
                            log.borrow_mut().push(name);
                            if prompt {
                                want_prompt_round();
                            }
                        })
                        .detach();
                    }
                }
                if log.borrow().contains(&"third") {
                    return Poll::Ready(());
                }
                // Polled again once the loop has nothing else to do, as a request would wake it.
                context.waker().wake_by_ref();
                Poll::Pending
            }),
        );
        log.take()
    }

    #[test]
    fn a_round_ends_after_a_task_that_answered_or_started_a_read() {
        let order = order_of_polls(true);
        let first = order.iter().position(|entry| *entry == "first").expect("the first task ran");
        assert_eq!(order[first + 1], "loop", "the request loop is polled right after it: {order:?}");
    }

    #[test]
    fn other_tasks_share_a_round() {
        let order = order_of_polls(false);
        let first = order.iter().position(|entry| *entry == "first").expect("the first task ran");
        assert_eq!(&order[first..first + 3], ["first", "second", "third"], "{order:?}");
    }

    /// The first poll with a waker that wakes nothing must not lose the task: its read, queued
    /// by that poll, completes and the task finishes.
    #[test]
    fn a_started_task_queues_its_read_at_once_and_still_finishes() {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("file");
        std::fs::write(&path, b"started bytes").expect("write");
        let runtime = crate::io::build_runtime(&mut prompt_runtime_builder()).expect("runtime");
        let polls = Rc::new(std::cell::Cell::new(0));
        let read = Rc::new(RefCell::new(Vec::new()));
        block_on_prompt(&runtime, async {
            let file = compio::fs::File::open(&path).await.expect("open");
            let (polls_in_task, read_in_task) = (Rc::clone(&polls), Rc::clone(&read));
            spawn_started(async move {
                polls_in_task.set(polls_in_task.get() + 1);
                let compio::BufResult(result, bytes) = file.read_exact_at(Vec::with_capacity(13), 0).await;
                result.expect("read");
                *read_in_task.borrow_mut() = bytes;
            });
            assert_eq!(polls.get(), 1, "polled before its task first ran");
            for _ in 0..1000 {
                if !read.borrow().is_empty() {
                    break;
                }
                compio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert_eq!(read.borrow().as_slice(), b"started bytes");
    }
}
