//! A server stopping while an admin command that changes the store runs: the command answers
//! before the socket closes, so the operator learns what it did (here an append's uid).
#![allow(clippy::expect_used)] // a failed expectation fails the test

mod serve_support;

use std::time::Duration;

use mailvault_engine::io::{FaultController, FaultyStorage};
use mailvault_engine::{Engine, INBOX, block_on};
use mailvault_frontends::admin::server::AdminServer;
use mailvault_frontends::admin::{self, AdminCommand};
use mailvault_frontends::session::registry::SessionRegistry;
use serve_support::EngineStore;

#[test]
fn an_append_running_when_the_admin_socket_stops_still_answers() {
    let faults = FaultController::new(1);
    let storage_faults = faults.clone();
    let store = EngineStore::new(1, move |config, hsm| {
        Engine::open_with(config, hsm, move |_, shard_directory| {
            FaultyStorage::new(shard_directory, storage_faults.clone())
        })
    });
    let (engine, token) = (&store.engine, &store.token);
    block_on(engine.create_account("alice")).expect("create account");
    let socket = store.directory.path().join("admin.sock");
    let server =
        AdminServer::start(&socket, engine.clone(), token.hsm.clone(), SessionRegistry::new()).expect("admin socket");

    // The append's write waits until released: the command is running when the stop comes.
    faults.hold_writes();
    let message = b"Subject: held\r\n\r\nwritten while the server stops\r\n".to_vec();
    let command = AdminCommand::append("alice".into(), INBOX.into(), message.clone());
    let client = std::thread::spawn(move || admin::send(&socket, &command));
    for _ in 0..2000 {
        if faults.writes_waiting() > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(faults.writes_waiting() > 0, "the append never reached its write");
    let stopping = std::thread::spawn(move || server.stop());
    std::thread::sleep(Duration::from_millis(300)); // the stop is under way, waiting for the append
    faults.release_writes();
    stopping.join().expect("stop");

    let reply = client.join().expect("client thread").expect("an answer, not a closed connection");
    assert!(reply.ok && reply.output.trim() == "1", "{}", reply.output);
    let stored = block_on(engine.fetch("alice", INBOX, 1)).expect("the appended message");
    assert_eq!(stored.body, message);
}
