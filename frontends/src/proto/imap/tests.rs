//! Parser tests from the examples of RFC 3501, 4315, 2177, 4959, 6851 and 7888.

use std::num::NonZeroU32;

use super::*;
use crate::proto::sasl::{PlainCredentials, SaslResponse};
use crate::proto::{Limits, Parsed as LineParsed, Secret};

fn parse(text: &str) -> CommandKind {
    parse_bytes(text.as_bytes())
}

fn parse_bytes(input: &[u8]) -> CommandKind {
    match parse_command(input, &Limits::imap()) {
        Ok(Parsed::Complete { value, consumed_bytes }) => {
            assert_eq!(consumed_bytes, input.len(), "{:?}", String::from_utf8_lossy(input));
            value.kind
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

fn error(text: &str) -> ParseError {
    match parse_command(text.as_bytes(), &Limits::imap()) {
        Err(rejected) => rejected.error.error,
        other => panic!("{text:?}: {other:?}"),
    }
}

fn set(text: &str) -> SequenceSet {
    SequenceSet::parse(text.as_bytes()).unwrap()
}

fn number(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).unwrap()
}

#[test]
fn any_state_commands() {
    assert_eq!(parse("a001 CAPABILITY\r\n"), CommandKind::Capability);
    assert_eq!(parse("a002 noop\r\n"), CommandKind::Noop);
    assert_eq!(parse("A023 LOGOUT\r\n"), CommandKind::Logout);
    assert_eq!(parse("a001 STARTTLS\r\n"), CommandKind::StartTls);
    assert_eq!(parse("a047 NAMESPACE\r\n"), CommandKind::Namespace);
}

#[test]
fn login_with_atoms_quoted_strings_and_literals() {
    assert_eq!(
        parse("a001 LOGIN SMITH SESAME\r\n"),
        CommandKind::Login { username: "SMITH".into(), password: Secret::new(b"SESAME".to_vec()) }
    );
    assert_eq!(
        parse("a001 LOGIN \"fred foo\" \"pass \\\"word\\\"\"\r\n"),
        CommandKind::Login { username: "fred foo".into(), password: Secret::new(b"pass \"word\"".to_vec()) }
    );
    assert_eq!(
        parse("A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man\r\n"),
        CommandKind::Login { username: "FRED FOOBAR".into(), password: Secret::new(b"fat man".to_vec()) }
    );
}

#[test]
fn synchronizing_literal_asks_for_continuation() {
    let limits = Limits::imap();
    let first = b"A001 LOGIN {11}\r\n";
    let Ok(Parsed::NeedsLiteral(request)) = parse_command(first, &limits) else { panic!("expected NeedsLiteral") };
    assert_eq!(request, LiteralRequest { size: 11, non_synchronizing: false, data_offset: first.len() });
    let partial = b"A001 LOGIN {11}\r\nFRED";
    assert_eq!(parse_command(partial, &limits), Ok(Parsed::NeedsLiteral(request)));
    let second = b"A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\n";
    let Ok(Parsed::NeedsLiteral(second_request)) = parse_command(second, &limits) else { panic!() };
    assert_eq!(second_request.data_offset, second.len());
    assert_eq!(parse_command(b"A001 LOGIN {11}\r\nFRED FOOBAR {7}\r\nfat man", &limits), Ok(Parsed::NeedsMoreData));
}

#[test]
fn non_synchronizing_literal() {
    assert_eq!(
        parse("A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man\r\n"),
        CommandKind::Login { username: "FRED FOOBAR".into(), password: Secret::new(b"fat man".to_vec()) }
    );
    let Ok(Parsed::NeedsLiteral(request)) = parse_command(b"A1 LOGIN {3+}\r\n", &Limits::imap()) else { panic!() };
    assert!(request.non_synchronizing);
}

#[test]
fn oversized_literal_is_refused_without_reading_it() {
    let limits = Limits { literal_bytes_max: 10, ..Limits::imap() };
    let input = b"A1 LOGIN {11}\r\n";
    let rejected = parse_command(input, &limits).unwrap_err();
    assert_eq!(rejected.error.error, ParseError::LiteralTooLarge { size: 11, non_synchronizing: false });
    assert_eq!(rejected.error.tag, Tag::new("A1"));
    assert_eq!(rejected.consumed_bytes, input.len());
    let mut reply = Vec::new();
    rejected.error.write_reply(&mut reply);
    assert_eq!(reply, b"A1 BAD literal of 11 bytes is too large\r\n");
}

#[test]
fn line_too_long() {
    let limits = Limits { line_bytes_max: 16, ..Limits::imap() };
    let rejected = parse_command(b"A1 LOGIN aaaaaaaaaaaaaaaaaaaaa", &limits).unwrap_err();
    assert_eq!(rejected.error.error, ParseError::LineTooLong);
    assert!(!rejected.line_finished);
}

#[test]
fn authenticate_with_and_without_initial_response() {
    assert_eq!(
        parse("a001 AUTHENTICATE plain\r\n"),
        CommandKind::Authenticate { mechanism: "PLAIN".into(), initial_response: None }
    );
    let CommandKind::Authenticate { initial_response: Some(SaslResponse::Data(message)), .. } =
        parse("a002 AUTHENTICATE PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n")
    else {
        panic!("expected an initial response");
    };
    assert_eq!(PlainCredentials::parse(message.expose()).unwrap().authentication_identity, "tim");
    assert_eq!(
        parse("a003 AUTHENTICATE PLAIN =\r\n"),
        CommandKind::Authenticate {
            mechanism: "PLAIN".into(),
            initial_response: Some(SaslResponse::Data(Secret::new(Vec::new())))
        }
    );
    assert!(matches!(error("a004 AUTHENTICATE PLAIN AHR\r\n"), ParseError::Sasl(_)));
}

#[test]
fn mailbox_commands() {
    assert_eq!(parse("A142 SELECT INBOX\r\n"), CommandKind::Select { mailbox: "INBOX".into() });
    assert_eq!(parse("A142 SELECT inbox\r\n"), CommandKind::Select { mailbox: "INBOX".into() });
    assert_eq!(parse("A932 EXAMINE blurdybloop\r\n"), CommandKind::Examine { mailbox: "blurdybloop".into() });
    assert_eq!(parse("A003 CREATE owatagusiam/\r\n"), CommandKind::Create { mailbox: "owatagusiam/".into() });
    assert_eq!(parse("A683 DELETE \"blurdy bloop\"\r\n"), CommandKind::Delete { mailbox: "blurdy bloop".into() });
    assert_eq!(
        parse("A683 RENAME blurdybloop sarasoop\r\n"),
        CommandKind::Rename { from: "blurdybloop".into(), to: "sarasoop".into() }
    );
    assert_eq!(
        parse("A002 SUBSCRIBE #news.comp.mail.mime\r\n"),
        CommandKind::Subscribe { mailbox: "#news.comp.mail.mime".into() }
    );
    assert_eq!(parse("A1 SELECT Entw&APw-rfe\r\n"), CommandKind::Select { mailbox: "Entw\u{fc}rfe".into() });
    assert_eq!(error("A1 SELECT \"Entw\u{fc}rfe\"\r\n"), ParseError::InvalidMailboxName);
    assert!(matches!(error("A1 SELECT Entw\u{fc}rfe\r\n"), ParseError::Syntax(_)), "8-bit bytes end an atom");
}

#[test]
fn list_and_lsub() {
    assert_eq!(
        parse("A101 LIST \"\" \"\"\r\n"),
        CommandKind::List { reference: String::new(), pattern: String::new() }
    );
    assert_eq!(
        parse("A102 LIST #news.comp.mail.misc \"\"\r\n"),
        CommandKind::List { reference: "#news.comp.mail.misc".into(), pattern: String::new() }
    );
    assert_eq!(
        parse("A202 LIST ~/Mail/ %\r\n"),
        CommandKind::List { reference: "~/Mail/".into(), pattern: "%".into() }
    );
    assert_eq!(
        parse("A002 LSUB \"#news.\" \"comp.mail.*\"\r\n"),
        CommandKind::Lsub { reference: "#news.".into(), pattern: "comp.mail.*".into() }
    );
    assert_eq!(parse("A3 LIST \"\" *\r\n"), CommandKind::List { reference: String::new(), pattern: "*".into() });
}

#[test]
fn status() {
    assert_eq!(
        parse("A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n"),
        CommandKind::Status { mailbox: "blurdybloop".into(), items: vec![StatusItem::UidNext, StatusItem::Messages] }
    );
    assert!(matches!(error("A042 STATUS blurdybloop ()\r\n"), ParseError::Syntax(_)));
    assert!(matches!(error("A042 STATUS blurdybloop (SIZE)\r\n"), ParseError::Syntax(_)));
}

#[test]
fn append_rfc3501_example() {
    let message = "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar <foobar@Blurdybloop.COM>\r\n\
                   Subject: afternoon meeting\r\n\r\nHello Joe, do you think we can meet at 3:30 tomorrow?\r\n";
    let input = format!("A003 APPEND saved-messages (\\Seen) {{{}}}\r\n{message}\r\n", message.len());
    assert_eq!(
        parse(&input),
        CommandKind::Append {
            mailbox: "saved-messages".into(),
            flags: vec![Flag::Seen],
            date_time: None,
            message: message.as_bytes().to_vec(),
        }
    );
    let dated = "A004 APPEND INBOX (\\Seen $Junk) \" 7-Feb-1994 21:52:25 -0800\" {5}\r\nhello\r\n";
    let CommandKind::Append { flags, date_time: Some(date_time), message, .. } = parse(dated) else { panic!() };
    assert_eq!(flags, vec![Flag::Seen, Flag::Keyword("$Junk".into())]);
    assert_eq!(date_time.to_string(), "07-Feb-1994 21:52:25 -0800");
    assert_eq!(message, b"hello");
    assert_eq!(
        parse("A5 APPEND INBOX {0}\r\n\r\n"),
        CommandKind::Append { mailbox: "INBOX".into(), flags: Vec::new(), date_time: None, message: Vec::new() }
    );
}

#[test]
fn append_uses_the_message_limit() {
    let limits = Limits { literal_bytes_max: 4, message_bytes_max: 8, ..Limits::imap() };
    assert!(matches!(parse_command(b"A1 APPEND INBOX {8}\r\n", &limits), Ok(Parsed::NeedsLiteral(_))));
    let rejected = parse_command(b"A1 APPEND INBOX {9}\r\n", &limits).unwrap_err();
    assert!(matches!(rejected.error.error, ParseError::LiteralTooLarge { size: 9, .. }));
}

#[test]
fn selected_state_commands() {
    assert_eq!(parse("FXXZ CHECK\r\n"), CommandKind::Check);
    assert_eq!(parse("A341 CLOSE\r\n"), CommandKind::Close);
    assert_eq!(parse("A202 EXPUNGE\r\n"), CommandKind::Expunge { uids: None });
    assert_eq!(parse("A003 UID EXPUNGE 3000:3002\r\n"), CommandKind::Expunge { uids: Some(set("3000:3002")) });
    assert_eq!(parse("A1 UNSELECT\r\n"), CommandKind::Unselect);
    assert_eq!(parse("a047 IDLE\r\n"), CommandKind::Idle);
    assert_eq!(
        parse("A003 COPY 2:4 MEETING\r\n"),
        CommandKind::Copy { uid: false, set: set("2:4"), mailbox: "MEETING".into() }
    );
    assert_eq!(
        parse("A004 UID COPY 305:310 MEETING\r\n"),
        CommandKind::Copy { uid: true, set: set("305:310"), mailbox: "MEETING".into() }
    );
    assert_eq!(
        parse("a UID MOVE 42:69 foo\r\n"),
        CommandKind::Move { uid: true, set: set("42:69"), mailbox: "foo".into() }
    );
    assert_eq!(error("A1 UID CHECK\r\n"), ParseError::UnknownCommand("UID CHECK".into()));
    assert_eq!(error("A1 XYZZY\r\n"), ParseError::UnknownCommand("XYZZY".into()));
}

#[test]
fn store() {
    assert_eq!(
        parse("A003 STORE 2:4 +FLAGS (\\Deleted)\r\n"),
        CommandKind::Store {
            uid: false,
            set: set("2:4"),
            mode: StoreMode::Add,
            silent: false,
            flags: vec![Flag::Deleted]
        }
    );
    assert_eq!(
        parse("A1 UID STORE 1:* -FLAGS.SILENT \\Seen $Label1\r\n"),
        CommandKind::Store {
            uid: true,
            set: set("1:*"),
            mode: StoreMode::Remove,
            silent: true,
            flags: vec![Flag::Seen, Flag::Keyword("$Label1".into())]
        }
    );
    assert_eq!(
        parse("A2 STORE 1 FLAGS ()\r\n"),
        CommandKind::Store { uid: false, set: set("1"), mode: StoreMode::Replace, silent: false, flags: Vec::new() }
    );
    assert!(matches!(error("A2 STORE 1 FLAGZ (\\Seen)\r\n"), ParseError::Syntax(_)));
}

#[test]
fn fetch_attributes() {
    let fetch = |text: &str| match parse(text) {
        CommandKind::Fetch { attributes, .. } => attributes,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        fetch("A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])\r\n"),
        FetchAttributes::List(vec![
            FetchAttribute::Flags,
            FetchAttribute::BodySection {
                peek: false,
                section: Section {
                    part: Vec::new(),
                    text: Some(SectionText::HeaderFields(vec!["DATE".into(), "FROM".into()]))
                },
                partial: None,
            },
        ])
    );
    assert_eq!(fetch("A1 FETCH 1 ALL\r\n"), FetchAttributes::All);
    assert_eq!(fetch("A1 FETCH 1 fast\r\n"), FetchAttributes::Fast);
    assert_eq!(fetch("A1 FETCH 1 FULL\r\n").expand().len(), 5);
    assert_eq!(fetch("A1 FETCH 1 UID\r\n"), FetchAttributes::List(vec![FetchAttribute::Uid]));
    assert_eq!(
        fetch("A1 FETCH 1 (BODY.PEEK[1.2.MIME] BODY[]<0.2048> BODY[3.TEXT] BODY[HEADER.FIELDS.NOT (X-A)])\r\n"),
        FetchAttributes::List(vec![
            FetchAttribute::BodySection {
                peek: true,
                section: Section { part: vec![number(1), number(2)], text: Some(SectionText::Mime) },
                partial: None
            },
            FetchAttribute::BodySection {
                peek: false,
                section: Section::default(),
                partial: Some(Partial { origin: 0, length: number(2048) })
            },
            FetchAttribute::BodySection {
                peek: false,
                section: Section { part: vec![number(3)], text: Some(SectionText::Text) },
                partial: None
            },
            FetchAttribute::BodySection {
                peek: false,
                section: Section { part: Vec::new(), text: Some(SectionText::HeaderFieldsNot(vec!["X-A".into()])) },
                partial: None
            },
        ])
    );
    let CommandKind::Fetch { uid, set: fetched, .. } = parse(
        "A999 UID FETCH 4827313:4828442 (FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE INTERNALDATE RFC822.HEADER)\r\n",
    ) else {
        panic!()
    };
    assert!(uid);
    assert_eq!(fetched, set("4827313:4828442"));
    for bad in [
        "A1 FETCH 1 (MIME)\r\n",
        "A1 FETCH 1 BODY[MIME]\r\n",
        "A1 FETCH 1 ALLX\r\n",
        "A1 FETCH 0 FLAGS\r\n",
        "A1 FETCH 1 BODY[]<0.0>\r\n",
    ] {
        assert!(matches!(error(bad), ParseError::Syntax(_) | ParseError::InvalidSequenceSet), "{bad}");
    }
}

#[test]
fn search() {
    let search = |text: &str| match parse(text) {
        CommandKind::Search { uid, charset, criteria } => (uid, charset, criteria),
        other => panic!("{other:?}"),
    };
    let (_, _, criteria) = search("A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"\r\n");
    assert_eq!(
        criteria,
        vec![
            SearchKey::Flagged,
            SearchKey::Since(Date::new(1994, 2, 1).unwrap()),
            SearchKey::Not(Box::new(SearchKey::From("Smith".into()))),
        ]
    );
    let (_, charset, criteria) = search("A284 SEARCH CHARSET UTF-8 TEXT {6}\r\nXXXXXX\r\n");
    assert_eq!(charset.as_deref(), Some("UTF-8"));
    assert_eq!(criteria, vec![SearchKey::Text("XXXXXX".into())]);
    let (uid, _, criteria) = search("A1 UID SEARCH OR (UNSEEN LARGER 100) HEADER X-Spam yes 1:5,*\r\n");
    assert!(uid);
    assert_eq!(
        criteria,
        vec![
            SearchKey::Or(
                Box::new(SearchKey::And(vec![SearchKey::Unseen, SearchKey::Larger(100)])),
                Box::new(SearchKey::Header("X-Spam".into(), "yes".into()))
            ),
            SearchKey::SequenceSet(set("1:5,*")),
        ]
    );
    let (_, _, criteria) = search("A2 SEARCH UID 1:* SENTON \"3-Mar-2020\" KEYWORD $Junk\r\n");
    assert_eq!(
        criteria,
        vec![
            SearchKey::Uid(set("1:*")),
            SearchKey::SentOn(Date::new(2020, 3, 3).unwrap()),
            SearchKey::Keyword("$Junk".into()),
        ]
    );
    assert_eq!(error("A285 SEARCH CHARSET WHATEVER TEXT x\r\n"), ParseError::UnsupportedCharset("WHATEVER".into()));
    assert_eq!(error("A3 SEARCH BEFORE 30-Feb-2020\r\n"), ParseError::InvalidDate);
}

#[test]
fn search_nesting_is_limited() {
    let deep = format!("A1 SEARCH {}ALL\r\n", "NOT ".repeat(100));
    assert_eq!(error(&deep), ParseError::NestingTooDeep);
    let parenthesised = format!("A1 SEARCH {}ALL{}\r\n", "(".repeat(100), ")".repeat(100));
    assert_eq!(error(&parenthesised), ParseError::NestingTooDeep);
    let shallow = format!("A1 SEARCH {}ALL\r\n", "NOT ".repeat(10));
    assert!(matches!(parse(&shallow), CommandKind::Search { .. }));
}

#[test]
fn bad_tags_and_trailing_garbage() {
    let rejected = parse_command(b"+ LOGIN a b\r\nA2 NOOP\r\n", &Limits::imap()).unwrap_err();
    assert_eq!(rejected.error.tag, None);
    assert_eq!(rejected.error.error, ParseError::InvalidTag);
    assert_eq!(rejected.consumed_bytes, 13);
    let mut reply = Vec::new();
    rejected.error.write_reply(&mut reply);
    assert_eq!(reply, b"* BAD missing or invalid tag\r\n");
    assert!(matches!(error("A1 NOOP now\r\n"), ParseError::Syntax(_)));
    assert!(matches!(error("A1  NOOP\r\n"), ParseError::Syntax(_)));
}

#[test]
fn pipelined_commands_are_taken_one_at_a_time() {
    let input = b"A1 NOOP\r\nA2 LOGIN {1}\r\nx y\r\nA3";
    let Ok(Parsed::Complete { consumed_bytes, .. }) = parse_command(input, &Limits::imap()) else { panic!() };
    assert_eq!(consumed_bytes, 9);
    let rest = &input[9..];
    let Ok(Parsed::Complete { consumed_bytes, .. }) = parse_command(rest, &Limits::imap()) else { panic!() };
    assert_eq!(&rest[consumed_bytes..], b"A3");
}

#[test]
fn idle_done() {
    let limits = Limits::imap();
    assert_eq!(
        parse_idle_done(b"DONE\r\nA1 NOOP\r\n", &limits),
        Ok(LineParsed::Complete { value: (), consumed_bytes: 6 })
    );
    assert_eq!(parse_idle_done(b"done\r\n", &limits), Ok(LineParsed::Complete { value: (), consumed_bytes: 6 }));
    assert_eq!(parse_idle_done(b"DON", &limits), Ok(LineParsed::NeedsMoreData));
    assert_eq!(parse_idle_done(b"A1 NOOP\r\n", &limits).unwrap_err().error, ParseError::ExpectedDone);
}
