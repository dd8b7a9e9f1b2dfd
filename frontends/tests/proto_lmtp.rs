//! LMTP properties: every command we can format parses back to itself, at every cut of its
//! bytes the parser asks for more instead of guessing, and pipelined commands come apart.

use mailvault_frontends::proto::lmtp::{
    Address, BodyType, Command, ForwardPath, MailParameters, ParseError, Reply, ReversePath, parse_command,
};
use mailvault_frontends::proto::{Limits, Parsed};
use proptest::prelude::*;

fn address() -> impl Strategy<Value = Address> {
    let local_part = prop_oneof![
        "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,8}(\\.[A-Za-z0-9_-]{1,8}){0,2}",
        "[ -~]{0,12}",
        "[a-z\u{e9}\u{4e2d}]{1,6}",
    ];
    let domain =
        prop_oneof!["[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?(\\.[a-z0-9]{1,8}){0,3}", "\\[[0-9]{1,3}(\\.[0-9]{1,3}){3}\\]",];
    (local_part, domain).prop_map(|(local_part, domain)| Address { local_part, domain })
}

fn command() -> impl Strategy<Value = Command> {
    let parameters = (
        proptest::option::of(any::<u64>()),
        proptest::option::of(prop_oneof![Just(BodyType::SevenBit), Just(BodyType::EightBitMime)]),
    )
        .prop_map(|(size_bytes, body)| MailParameters { size_bytes, body });
    prop_oneof![
        "[!-~]{1,30}".prop_map(|domain| Command::Lhlo { domain }),
        (prop_oneof![Just(ReversePath::Null), address().prop_map(ReversePath::Address)], parameters)
            .prop_map(|(from, parameters)| Command::Mail { from, parameters }),
        prop_oneof![Just(ForwardPath::Postmaster), address().prop_map(ForwardPath::Address)]
            .prop_map(|to| Command::Rcpt { to }),
        Just(Command::Data),
        Just(Command::Rset),
        Just(Command::Noop),
        Just(Command::Quit),
        Just(Command::StartTls),
        "[ -~\u{e9}]{1,30}".prop_map(|argument| Command::Vrfy { argument }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn format_then_parse_round_trips(command in command()) {
        let wire = command.to_bytes();
        prop_assert_eq!(
            parse_command(&wire, &Limits::lmtp()),
            Ok(Parsed::Complete { value: command, consumed_bytes: wire.len() })
        );
    }

    #[test]
    fn every_prefix_needs_more_data(command in command()) {
        let wire = command.to_bytes();
        for cut in 0..wire.len() {
            prop_assert_eq!(parse_command(&wire[..cut], &Limits::lmtp()), Ok(Parsed::NeedsMoreData), "cut {}", cut);
        }
    }

    #[test]
    fn pipelined_commands_parse_one_at_a_time(commands in proptest::collection::vec(command(), 1..6)) {
        let wire: Vec<u8> = commands.iter().flat_map(Command::to_bytes).collect();
        let mut rest = &wire[..];
        for command in commands {
            let Ok(Parsed::Complete { value, consumed_bytes }) = parse_command(rest, &Limits::lmtp()) else {
                return Err(TestCaseError::fail("expected a command"));
            };
            prop_assert_eq!(value, command);
            rest = &rest[consumed_bytes..];
        }
        prop_assert!(rest.is_empty());
    }
}

fn parse(text: &str) -> Result<Command, ParseError> {
    match parse_command(text.as_bytes(), &Limits::lmtp()) {
        Ok(Parsed::Complete { value, .. }) => Ok(value),
        Ok(Parsed::NeedsMoreData) => panic!("incomplete {text:?}"),
        Err(rejected) => Err(rejected.error),
    }
}

fn address_of(local_part: &str, domain: &str) -> Address {
    Address { local_part: local_part.into(), domain: domain.into() }
}

#[test]
fn rfc2033_session_commands() {
    assert_eq!(parse("LHLO foo.edu\r\n"), Ok(Command::Lhlo { domain: "foo.edu".into() }));
    assert_eq!(
        parse("MAIL FROM:<chris@bar.com>\r\n"),
        Ok(Command::Mail {
            from: ReversePath::Address(address_of("chris", "bar.com")),
            parameters: MailParameters::default()
        })
    );
    assert_eq!(
        parse("RCPT TO:<pat@foo.edu>\r\n"),
        Ok(Command::Rcpt { to: ForwardPath::Address(address_of("pat", "foo.edu")) })
    );
    assert_eq!(parse("DATA\r\n"), Ok(Command::Data));
    assert_eq!(parse("QUIT\r\n"), Ok(Command::Quit));
}

#[test]
fn mail_parameters_and_null_path() {
    assert_eq!(
        parse("mail from:<> SIZE=1000 BODY=8BITMIME\r\n"),
        Ok(Command::Mail {
            from: ReversePath::Null,
            parameters: MailParameters { size_bytes: Some(1000), body: Some(BodyType::EightBitMime) }
        })
    );
    assert_eq!(
        parse("MAIL FROM: <a@b.c>\r\n"),
        Ok(Command::Mail { from: ReversePath::Address(address_of("a", "b.c")), parameters: MailParameters::default() }),
        "a space after the colon is tolerated"
    );
    assert_eq!(parse("MAIL FROM:<a@b.c> SMTPUTF8\r\n"), Err(ParseError::UnrecognizedParameter("SMTPUTF8".into())));
    assert_eq!(parse("MAIL FROM:<a@b.c> SIZE=x\r\n"), Err(ParseError::InvalidParameterValue("SIZE")));
    assert_eq!(parse("MAIL FROM:<a@b.c> BODY=BINARYMIME\r\n"), Err(ParseError::InvalidParameterValue("BODY")));
    assert_eq!(parse("MAIL FROM:a@b.c\r\n"), Err(ParseError::InvalidSender));
    assert_eq!(parse("MAIL TO:<a@b.c>\r\n"), Err(ParseError::Syntax { command: "MAIL" }));
}

#[test]
fn recipients() {
    assert_eq!(parse("RCPT TO:<postmaster>\r\n"), Ok(Command::Rcpt { to: ForwardPath::Postmaster }));
    assert_eq!(
        parse("RCPT TO:<@relay.org:joe@x.org>\r\n"),
        Ok(Command::Rcpt { to: ForwardPath::Address(address_of("joe", "x.org")) })
    );
    assert_eq!(parse("RCPT TO:<nobody>\r\n"), Err(ParseError::InvalidRecipient));
    assert_eq!(parse("RCPT TO:<a@b.c> NOTIFY=NEVER\r\n"), Err(ParseError::UnrecognizedParameter("NOTIFY".into())));
    let long = format!("RCPT TO:<{}@x.org>\r\n", "a".repeat(300));
    assert_eq!(parse(&long), Err(ParseError::InvalidRecipient));
}

#[test]
fn other_commands_and_their_replies() {
    assert_eq!(parse("NOOP anything\r\n"), Ok(Command::Noop));
    assert_eq!(parse("VRFY Smith\r\n"), Ok(Command::Vrfy { argument: "Smith".into() }));
    assert_eq!(parse("STARTTLS\r\n"), Ok(Command::StartTls));
    assert_eq!(parse("RSET now\r\n"), Err(ParseError::Syntax { command: "RSET" }));
    let helo = parse("EHLO foo\r\n").unwrap_err();
    assert_eq!(helo, ParseError::UnknownCommand("EHLO".into()));
    assert_eq!(helo.reply().to_bytes(), b"500 5.5.1 command not recognized: EHLO\r\n");
    assert_eq!(Reply::cannot_verify().code, 252);
}

#[test]
fn overlong_line_is_rejected_and_skipped() {
    let limits = Limits { line_bytes_max: 32, ..Limits::lmtp() };
    let input = format!("VRFY {}\r\nNOOP\r\n", "x".repeat(40));
    let rejected = parse_command(input.as_bytes(), &limits).unwrap_err();
    assert_eq!(rejected.error, ParseError::LineTooLong);
    assert!(!rejected.line_finished);
    let rest = &input.as_bytes()[rejected.consumed_bytes..];
    let mailvault_frontends::proto::LineDiscard::Finished { consumed_bytes } =
        mailvault_frontends::proto::discard_line(rest)
    else {
        panic!("the line ends in the buffer");
    };
    assert_eq!(
        parse_command(&rest[consumed_bytes..], &limits),
        Ok(Parsed::Complete { value: Command::Noop, consumed_bytes: 6 })
    );
}
