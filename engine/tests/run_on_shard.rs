//! Tasks started on a shard's thread (`Engine::spawn_on_shard`, `run_on_shard`): they run on
//! that thread, their requests to that shard and to the others are served, a full queue of
//! their own shard's requests does not stall them, a panic reaches the caller, and a shard
//! that does not exist is a clear error, and a task knows which shard's thread it is on.
//! `Engine::shut_down` stops the shards though a task on one holds a handle, and a task that
//! drops the last handle while its shard's queue is full does not hang the stop.
//! (A quarantined shard's refusal: tests/quarantine.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestStore;
use mailvault_engine::{Engine, EngineError, Flags, INBOX, block_on, lock_store};

/// Longest any of these tests may take: a stalled shard fails the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(120);

/// An account name that `engine` routes to `shard`.
fn account_on(engine: &Engine, shard: usize) -> String {
    (0..1000)
        .map(|index| format!("user{index}@example.org"))
        .find(|name| engine.shard_of(name) == shard)
        .expect("some name routes to every shard")
}

/// An account on shard 0 with one message in its INBOX: the account's name and the uid.
fn account_with_a_message(engine: &Engine) -> (String, u32) {
    let account = account_on(engine, 0);
    block_on(engine.create_account(&account)).unwrap();
    let uid = block_on(engine.append(&account, INBOX, body("one"), Flags::default(), None)).unwrap();
    (account, uid)
}

fn body(tag: &str) -> Vec<u8> {
    format!("Subject: {tag}\r\n\r\nwritten from a shard's own thread\r\n").into_bytes()
}

/// Runs `test` on a thread of its own and fails if it takes longer than [`DEADLINE`].
fn within_deadline(test: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        test();
        let _ = done.send(());
    });
    match finished.recv_timeout(DEADLINE) {
        Ok(()) => thread.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // The test panicked: hand its panic on.
            std::panic::resume_unwind(thread.join().unwrap_err())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("still running after {DEADLINE:?}: a shard stalled"),
    }
}

#[test]
fn a_task_runs_on_its_shards_thread_and_its_requests_to_every_shard_are_served() {
    let store = TestStore::new(2);
    within_deadline(move || {
        let engine = store.open();
        for shard in 0..2 {
            let (here, there) = (account_on(&engine, shard), account_on(&engine, 1 - shard));
            let on_shard = engine.clone();
            let task = move || async move {
                let thread = std::thread::current().name().map(str::to_owned);
                let mut fetched = Vec::new();
                for account in [here, there] {
                    if on_shard.create_account(&account).await.is_err() {
                        // Created by the other shard's round.
                        assert!(on_shard.list_mailboxes(&account).await.is_ok());
                    }
                    let tag = format!("{account} from shard {shard}");
                    let uid = on_shard.append(&account, INBOX, body(&tag), Flags::default(), None).await.unwrap();
                    fetched.push((tag, on_shard.fetch(&account, INBOX, uid).await.unwrap().body));
                }
                (thread, fetched)
            };
            let (thread, fetched) = engine.spawn_on_shard(shard, task).unwrap().join_blocking().unwrap();
            assert_eq!(thread.as_deref(), Some(format!("mailvault-shard-{shard}").as_str()));
            for (tag, fetched) in fetched {
                assert_eq!(fetched, body(&tag), "{tag}");
            }
        }
        // The async form, from outside, gives the same placement.
        let thread = block_on(engine.run_on_shard(1, || async { std::thread::current().name().map(str::to_owned) }));
        assert_eq!(thread.unwrap().as_deref(), Some("mailvault-shard-1"));
    });
}

/// More requests in flight from tasks on a shard than its queue holds (4096): senders on the
/// shard's own thread wait for room asynchronously while the shard drains its queue on the
/// same thread, so every request is answered.
#[test]
fn tasks_on_a_shard_may_fill_its_queue_without_stalling_it() {
    const REQUESTS: usize = 6000;
    let store = TestStore::new(1);
    within_deadline(move || {
        let engine = store.open();
        let (account, uid) = account_with_a_message(&engine);
        let on_shard = engine.clone();
        let answered = block_on(engine.run_on_shard(0, move || async move {
            // Polled in turn in one go: the first 4096 fill the queue before the shard, on
            // this same thread, takes any of them.
            let fetches = (0..REQUESTS).map(|_| on_shard.fetch(&account, INBOX, uid));
            let answers = futures_util::future::join_all(fetches).await;
            answers
                .into_iter()
                .filter(|answer| answer.as_ref().is_ok_and(|message| message.body == body("one")))
                .count()
        }))
        .unwrap();
        assert_eq!(answered, REQUESTS);
    });
}

#[test]
fn a_panic_in_a_task_reaches_its_caller_and_the_shard_serves_on() {
    let store = TestStore::new(1);
    within_deadline(move || {
        let engine = store.open();
        let handle = engine.spawn_on_shard(0, || async { panic!("the task's own panic") }).unwrap();
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle.join_blocking())).unwrap_err();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"the task's own panic"));
        // A panic of the closure itself, before it makes its future, likewise.
        let handle =
            engine.spawn_on_shard(0, || -> std::future::Ready<()> { panic!("the closure's own panic") }).unwrap();
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle.join_blocking())).unwrap_err();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"the closure's own panic"));
        let account = account_on(&engine, 0);
        block_on(engine.create_account(&account)).expect("the shard still serves");
        assert_eq!(engine.spawn_on_shard(0, || async { 7 }).unwrap().join_blocking().unwrap(), 7);
    });
}

#[test]
fn a_shard_that_does_not_exist_is_a_clear_error() {
    let store = TestStore::new(2);
    let engine = store.open();
    let Err(error) = engine.spawn_on_shard(2, || async {}) else { panic!("shard 2 of 2 accepted a task") };
    assert!(matches!(error, EngineError::InvalidInput { what: "shard", .. }), "{error:?}");
    assert_eq!(error.to_string(), "invalid shard: shard 2 does not exist; the store has 2");
    let error = block_on(engine.run_on_shard(usize::MAX, || async {})).unwrap_err();
    assert!(matches!(error, EngineError::InvalidInput { what: "shard", .. }), "{error:?}");
}

/// `on_shard_thread` (which tells the shard that a fetch's caller is one of its own tasks) is
/// true on that shard's thread only: not on another shard's, not off the shards, and not for a
/// shard that does not exist.
#[test]
fn a_task_knows_the_shard_whose_thread_it_runs_on() {
    let store = TestStore::new(2);
    within_deadline(move || {
        let engine = store.open();
        assert_eq!([engine.on_shard_thread(0), engine.on_shard_thread(1)], [false, false], "off the shards");
        for shard in 0..2 {
            let on_shard = engine.clone();
            let seen = block_on(engine.run_on_shard(shard, move || async move {
                [on_shard.on_shard_thread(0), on_shard.on_shard_thread(1), on_shard.on_shard_thread(2)]
            }))
            .unwrap();
            assert_eq!(seen, [shard == 0, shard == 1, false], "a task on shard {shard}");
        }
    });
}

/// A drop of the caller's handle does not wait for the shards while a task on a shard's thread
/// still holds one; `shut_down` does. `mailvault serve --frontends-on-shards` once exited
/// while a shard wrote its last checkpoint that way, and SoftHSM, called as the process tore
/// down, crashed it.
#[test]
fn shut_down_stops_the_shards_though_a_task_on_one_still_holds_a_handle() {
    let store = TestStore::new(2);
    within_deadline(move || {
        let engine = store.open();
        let account = account_on(&engine, 0);
        block_on(engine.create_account(&account)).unwrap();
        block_on(engine.append(&account, INBOX, body("before the stop"), Flags::default(), None)).unwrap();
        let held = engine.clone();
        let (started, task_started) = flume::bounded(1);
        let _task = engine
            .spawn_on_shard(1, move || async move {
                let _held = held;
                let _ = started.send(());
                std::future::pending::<()>().await;
            })
            .unwrap();
        task_started.recv().unwrap();
        let kept = engine.clone();
        engine.shut_down();

        let error = block_on(kept.create_account(&account_on(&kept, 1))).unwrap_err();
        assert!(matches!(error, EngineError::ShutDown), "{error:?}");
        drop(kept);
        // Shard 1's runtime dropped the task, and its handle, as the shard stopped.
        drop(lock_store(&store.config.data_dir).expect("the store is no longer locked"));
        let engine = store.open();
        assert_eq!(block_on(engine.fetch(&account, INBOX, 1)).unwrap().body, body("before the stop"));
    });
}

/// The last handle dropped by a task on a shard whose queue is full: the drop must not wait
/// for room in that queue, which only its own thread (the one dropping) can make.
#[test]
fn the_last_handle_dropped_on_a_shard_with_a_full_queue_stops_the_engine() {
    const REQUESTS: usize = 6000;
    let store = TestStore::new(2);
    within_deadline(move || {
        let engine = store.open();
        let (account, uid) = account_with_a_message(&engine);
        let last = engine.clone();
        let (dropped, caller_dropped) = flume::bounded(1);
        let (flooded, queue_full) = flume::bounded(1);
        let _task = engine
            .spawn_on_shard(0, move || async move {
                // The caller's handle goes first, so that the task's is the last.
                caller_dropped.recv_async().await.unwrap();
                // Each fetch is polled once: the first 4096 fill the queue, the rest wait for
                // room. Then all are dropped, their requests still queued, and the handle too.
                let mut fetches: Vec<_> = (0..REQUESTS).map(|_| Box::pin(last.fetch(&account, INBOX, uid))).collect();
                for fetch in &mut fetches {
                    assert!(futures_util::poll!(fetch.as_mut()).is_pending());
                }
                let _ = flooded.send(());
                drop(fetches);
                drop(last);
            })
            .unwrap();
        drop(engine);
        dropped.send(()).unwrap();
        queue_full.recv().unwrap();
        // The store is unlocked once the engine is gone: poll for it, bounded by the deadline.
        while lock_store(&store.config.data_dir).is_err() {
            std::thread::sleep(Duration::from_millis(10));
        }
    });
}
