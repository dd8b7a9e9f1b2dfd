//! A closed account over the real protocols: LMTP refuses delivery permanently (550 5.2.1),
//! POP3 login fails like a wrong password, and after `account reopen` both work again. The
//! commands run as the admin socket runs them.
#![allow(clippy::expect_used)] // helpers outside #[test] functions: a failed expectation fails the test

mod serve_support;

use mailvault_frontends::admin::AdminCommand;
use serde_json::{Value, json};
use serve_support::TestServer;

const PASSWORD: &str = "alice password";

fn deliver(server: &TestServer) -> Value {
    let message = b"From: s@example.org\r\nSubject: hi\r\n\r\nhello\r\n".to_vec();
    let result = server.python(
        "lmtp_transaction",
        &json!({"sender": "s@example.org", "recipients": ["alice@example.org"], "message": hex::encode(&message)}),
    );
    result["rcpt"][0].clone()
}

fn pop3_login(server: &TestServer) -> Value {
    let steps = json!([["user", "alice"], ["pass", PASSWORD], ["quit"]]);
    let result = server.python("pop3_session", &json!({"mode": "ssl", "steps": steps}));
    result["results"][2].clone()
}

#[test]
fn a_closed_account_refuses_delivery_and_login_until_reopened() {
    let server = TestServer::start();
    server.add_account("alice", PASSWORD);
    assert_eq!(deliver(&server)[0], 250);

    let closed = server.admin(AdminCommand::AccountClose { account: "alice".into(), purge_after_days: Some(40) });
    assert!(closed.contains("closed") && closed.contains("purge scheduled"), "{closed}");
    let listed = server.admin(AdminCommand::AccountList);
    assert!(listed.lines().any(|line| line.starts_with("alice") && line.contains("closed")), "{listed}");

    let refused = deliver(&server);
    assert_eq!(refused[0], 550, "{refused}");
    assert!(refused[1].as_str().expect("text").starts_with("5.2.1"), "{refused}");
    let login = pop3_login(&server);
    assert!(login.get("error").is_some(), "a closed account logged in: {login}");

    server.admin(AdminCommand::AccountReopen { account: "alice".into() });
    assert_eq!(deliver(&server)[0], 250);
    let login = pop3_login(&server);
    assert!(login.get("ok").is_some(), "the reopened account cannot log in: {login}");
    assert_eq!(server.inbox("alice").len(), 2);

    // Purge: only once closed; then the account is gone and its address unknown.
    server.admin(AdminCommand::AccountClose { account: "alice".into(), purge_after_days: None });
    let purged = server.admin(AdminCommand::AccountPurge { account: "alice".into() });
    assert!(purged.contains("purged") && purged.contains("destroyed"), "{purged}");
    let listed = server.admin(AdminCommand::AccountList);
    assert!(!listed.lines().any(|line| line.starts_with("alice")), "{listed}");
    let unknown = deliver(&server);
    assert_eq!(unknown[0], 550, "{unknown}");
    assert!(unknown[1].as_str().expect("text").starts_with("5.1.1"), "{unknown}");
}
