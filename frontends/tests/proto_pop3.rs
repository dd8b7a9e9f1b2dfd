//! POP3 properties: format→parse round trips, streaming at every cut, and pipelining.

use mailvault_frontends::proto::pop3::{Command, parse_command};
use mailvault_frontends::proto::sasl::SaslResponse;
use mailvault_frontends::proto::{Limits, Parsed, Secret};
use proptest::prelude::*;

fn message_number() -> impl Strategy<Value = u32> {
    prop_oneof![1_u32..20, 1_u32..=u32::MAX]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        "[!-~]{1,30}".prop_map(|name| Command::User { name }),
        proptest::collection::vec(
            any::<u8>().prop_filter("no line ends", |byte| *byte != b'\r' && *byte != b'\n'),
            1..40
        )
        .prop_map(|password| Command::Pass { password: Secret::new(password) }),
        ("[A-Z0-9_-]{1,20}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..60))).prop_map(
            |(mechanism, response)| Command::Auth {
                mechanism,
                initial_response: response.map(|bytes| SaslResponse::Data(Secret::new(bytes))),
            }
        ),
        Just(Command::Stat),
        proptest::option::of(message_number()).prop_map(|message| Command::List { message }),
        message_number().prop_map(|message| Command::Retr { message }),
        message_number().prop_map(|message| Command::Dele { message }),
        Just(Command::Noop),
        Just(Command::Rset),
        Just(Command::Quit),
        proptest::option::of(message_number()).prop_map(|message| Command::Uidl { message }),
        (message_number(), any::<u32>()).prop_map(|(message, lines)| Command::Top { message, lines }),
        Just(Command::Capa),
        Just(Command::Stls),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn format_then_parse_round_trips(command in command()) {
        let wire = command.to_bytes();
        prop_assert_eq!(
            parse_command(&wire, &Limits::pop3()),
            Ok(Parsed::Complete { value: command, consumed_bytes: wire.len() })
        );
    }

    #[test]
    fn every_prefix_needs_more_data(command in command()) {
        let wire = command.to_bytes();
        for cut in 0..wire.len() {
            prop_assert_eq!(parse_command(&wire[..cut], &Limits::pop3()), Ok(Parsed::NeedsMoreData), "cut {}", cut);
        }
    }

    #[test]
    fn pipelined_commands_parse_one_at_a_time(commands in proptest::collection::vec(command(), 1..6)) {
        let wire: Vec<u8> = commands.iter().flat_map(Command::to_bytes).collect();
        let mut rest = &wire[..];
        for command in commands {
            let Ok(Parsed::Complete { value, consumed_bytes }) = parse_command(rest, &Limits::pop3()) else {
                return Err(TestCaseError::fail("expected a command"));
            };
            prop_assert_eq!(value, command);
            rest = &rest[consumed_bytes..];
        }
        prop_assert!(rest.is_empty());
    }
}
