//! A client that sends its command and then reads none of the reply holds one of the admin
//! socket's 16 places only until the reply timeout; before session 27 it held it for good, and
//! 16 such clients locked the socket until the server restarted.
#![allow(clippy::expect_used)] // a failed expectation fails the test

mod serve_support;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use mailvault_engine::{Engine, Flags, INBOX, block_on};
use mailvault_frontends::admin::server::{AdminServer, AdminTimeouts};
use mailvault_frontends::admin::wire::encode_request;
use mailvault_frontends::admin::{self, AdminCommand};
use mailvault_frontends::session::registry::SessionRegistry;
use serve_support::EngineStore;

const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// Far more than the reply timeout, even on a slow machine.
const WAIT_BOUND: Duration = Duration::from_secs(60);

#[test]
fn replies_no_one_reads_free_their_places_after_the_reply_timeout() {
    let store = EngineStore::new(1, Engine::open);
    let (engine, token) = (&store.engine, &store.token);
    // Far larger than a Unix socket's buffer: writing the reply waits for the client to read.
    let mut message = b"Subject: large\r\n\r\n".to_vec();
    message.resize(4 * 1024 * 1024, b'x');
    block_on(async {
        engine.create_account("alice").await.expect("create account");
        engine.append("alice", INBOX, message, Flags::default(), None).await.expect("append")
    });
    let socket = store.directory.path().join("admin.sock");
    let timeouts = AdminTimeouts { reply: REPLY_TIMEOUT, ..AdminTimeouts::default() };
    let _server =
        AdminServer::start_with_timeouts(&socket, engine.clone(), token.hsm.clone(), SessionRegistry::new(), timeouts)
            .expect("admin socket");

    let started = Instant::now();
    let cat = AdminCommand::Cat { account: "alice".into(), mailbox: INBOX.into(), uid: 1 };
    let stuck: Vec<UnixStream> = (0..16)
        .map(|_| {
            let mut stream = UnixStream::connect(&socket).expect("connect");
            stream.write_all(&encode_request(&cat)).expect("send the command");
            stream
        })
        .collect();
    let busy = admin::send(&socket, &AdminCommand::AccountList).expect("reply");
    if started.elapsed() < REPLY_TIMEOUT {
        assert!(!busy.ok && busy.output.contains("16 admin commands are running"), "{}", busy.output);
    }

    // The sixteen are still connected, reading nothing: once their replies time out, the
    // socket serves again.
    let answered = loop {
        let reply = admin::send(&socket, &AdminCommand::AccountList).expect("reply");
        if reply.ok {
            break reply;
        }
        assert!(started.elapsed() < WAIT_BOUND, "the places never came free: {}", reply.output);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(answered.output.starts_with("account"), "{}", answered.output);
    drop(stuck);
}
