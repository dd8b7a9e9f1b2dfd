//! IMAP properties: format→parse round trips for every command kind, streaming correctness at
//! every cut (`NeedsMoreData` or `NeedsLiteral`, then the same command), pipelining, and the
//! modified UTF-7 round trip.

use std::num::NonZeroU32;

use mailvault_frontends::proto::imap::{
    Command, CommandKind, Date, DateTime, FetchAttribute, FetchAttributes, Flag, Parsed, Partial, SearchKey, Section,
    SectionText, SequenceNumber, SequenceRange, SequenceSet, StatusItem, StoreMode, Tag, decode_mailbox_name,
    encode_mailbox_name, parse_command,
};
use mailvault_frontends::proto::sasl::SaslResponse;
use mailvault_frontends::proto::{Limits, Secret};
use proptest::prelude::*;

fn tag() -> impl Strategy<Value = Tag> {
    "[A-Za-z0-9.]{1,8}".prop_filter_map("valid tag", |text| Tag::new(&text))
}

/// Any UTF-8 name except the spellings of INBOX, which are normalised.
fn mailbox() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z0-9 ./&~#\"\\\\-]{0,16}", "\\PC{0,8}", "[a-z\u{e9}\u{4e2d}\u{1f4e7}&]{1,8}"]
        .prop_filter("INBOX is normalised", |name| !name.eq_ignore_ascii_case("INBOX"))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z0-9]{1,10}", "[ -~]{0,12}", "\\PC{0,6}", "[a\r\n\"\\\\]{0,6}"]
}

fn number() -> impl Strategy<Value = NonZeroU32> {
    prop_oneof![1_u32..100, 1_u32..=u32::MAX].prop_filter_map("non-zero", NonZeroU32::new)
}

fn sequence_set() -> impl Strategy<Value = SequenceSet> {
    let end = prop_oneof![4 => number().prop_map(SequenceNumber::Number), 1 => Just(SequenceNumber::Largest)];
    proptest::collection::vec((end.clone(), end), 1..4).prop_filter_map("non-empty", |ranges| {
        SequenceSet::new(ranges.into_iter().map(|(start, end)| SequenceRange { start, end }).collect())
    })
}

fn flag() -> impl Strategy<Value = Flag> {
    prop_oneof![
        Just(Flag::Answered),
        Just(Flag::Flagged),
        Just(Flag::Deleted),
        Just(Flag::Seen),
        Just(Flag::Draft),
        Just(Flag::Recent),
        "[A-Za-z$][A-Za-z0-9$_-]{0,10}".prop_map(Flag::Keyword),
        "X[A-Za-z]{1,8}".prop_map(Flag::Extension),
    ]
}

fn date() -> impl Strategy<Value = Date> {
    (1900_u16..2100, 1_u8..=12, 1_u8..=28)
        .prop_filter_map("valid date", |(year, month, day)| Date::new(year, month, day))
}

fn date_time() -> impl Strategy<Value = DateTime> {
    (date(), 0_u8..24, 0_u8..60, 0_u8..61, -1439_i16..=1439)
        .prop_map(|(date, hour, minute, second, zone_minutes)| DateTime { date, hour, minute, second, zone_minutes })
}

fn search_key() -> impl Strategy<Value = SearchKey> {
    let leaf = prop_oneof![
        Just(SearchKey::All),
        Just(SearchKey::Answered),
        Just(SearchKey::Deleted),
        Just(SearchKey::Draft),
        Just(SearchKey::Flagged),
        Just(SearchKey::New),
        Just(SearchKey::Old),
        Just(SearchKey::Recent),
        Just(SearchKey::Seen),
        Just(SearchKey::Unanswered),
        Just(SearchKey::Undeleted),
        Just(SearchKey::Undraft),
        Just(SearchKey::Unflagged),
        Just(SearchKey::Unseen),
        text().prop_map(SearchKey::Bcc),
        text().prop_map(SearchKey::Body),
        text().prop_map(SearchKey::Cc),
        text().prop_map(SearchKey::From),
        text().prop_map(SearchKey::Subject),
        text().prop_map(SearchKey::Text),
        text().prop_map(SearchKey::To),
        (text(), text()).prop_map(|(field, value)| SearchKey::Header(field, value)),
        "[A-Za-z$][A-Za-z0-9$_]{0,8}".prop_map(SearchKey::Keyword),
        "[A-Za-z$][A-Za-z0-9$_]{0,8}".prop_map(SearchKey::Unkeyword),
        date().prop_map(SearchKey::Before),
        date().prop_map(SearchKey::On),
        date().prop_map(SearchKey::Since),
        date().prop_map(SearchKey::SentBefore),
        date().prop_map(SearchKey::SentOn),
        date().prop_map(SearchKey::SentSince),
        any::<u32>().prop_map(SearchKey::Larger),
        any::<u32>().prop_map(SearchKey::Smaller),
        sequence_set().prop_map(SearchKey::Uid),
        sequence_set().prop_map(SearchKey::SequenceSet),
    ];
    leaf.prop_recursive(4, 16, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|key| SearchKey::Not(Box::new(key))),
            (inner.clone(), inner.clone()).prop_map(|(left, right)| SearchKey::Or(Box::new(left), Box::new(right))),
            proptest::collection::vec(inner, 1..3).prop_map(SearchKey::And),
        ]
    })
}

fn section() -> impl Strategy<Value = Section> {
    let names = proptest::collection::vec("[A-Za-z-]{1,10}|[ -~]{1,6}", 1..3);
    let part = proptest::collection::vec(number(), 0..3);
    (
        part,
        proptest::option::of(prop_oneof![
            Just(SectionText::Header),
            Just(SectionText::Text),
            Just(SectionText::Mime),
            names.clone().prop_map(SectionText::HeaderFields),
            names.prop_map(SectionText::HeaderFieldsNot),
        ]),
    )
        .prop_map(|(part, text)| {
            // MIME needs a part number.
            let text = if part.is_empty() && text == Some(SectionText::Mime) { None } else { text };
            Section { part, text }
        })
}

fn fetch_attributes() -> impl Strategy<Value = FetchAttributes> {
    let attribute = prop_oneof![
        Just(FetchAttribute::Envelope),
        Just(FetchAttribute::Flags),
        Just(FetchAttribute::InternalDate),
        Just(FetchAttribute::Rfc822),
        Just(FetchAttribute::Rfc822Header),
        Just(FetchAttribute::Rfc822Size),
        Just(FetchAttribute::Rfc822Text),
        Just(FetchAttribute::Body),
        Just(FetchAttribute::BodyStructure),
        Just(FetchAttribute::Uid),
        (any::<bool>(), section(), proptest::option::of((any::<u32>(), number()))).prop_map(
            |(peek, section, partial)| FetchAttribute::BodySection {
                peek,
                section,
                partial: partial.map(|(origin, length)| Partial { origin, length }),
            }
        ),
    ];
    prop_oneof![
        Just(FetchAttributes::All),
        Just(FetchAttributes::Fast),
        Just(FetchAttributes::Full),
        proptest::collection::vec(attribute, 1..5).prop_map(FetchAttributes::List),
    ]
}

fn status_item() -> impl Strategy<Value = StatusItem> {
    prop_oneof![
        Just(StatusItem::Messages),
        Just(StatusItem::Recent),
        Just(StatusItem::UidNext),
        Just(StatusItem::UidValidity),
        Just(StatusItem::Unseen),
    ]
}

fn store_mode() -> impl Strategy<Value = StoreMode> {
    prop_oneof![Just(StoreMode::Replace), Just(StoreMode::Add), Just(StoreMode::Remove)]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn command_kind() -> impl Strategy<Value = CommandKind> {
    prop_oneof![any_state_command(), mailbox_command(), selected_command()]
}

fn any_state_command() -> impl Strategy<Value = CommandKind> {
    prop_oneof![
        prop_oneof![
            Just(CommandKind::Capability),
            Just(CommandKind::Noop),
            Just(CommandKind::Logout),
            Just(CommandKind::StartTls),
            Just(CommandKind::Idle),
            Just(CommandKind::Namespace),
            Just(CommandKind::Check),
            Just(CommandKind::Close),
            Just(CommandKind::Unselect),
        ],
        ("[A-Z0-9-]{1,12}", proptest::option::of(bytes())).prop_map(|(mechanism, response)| {
            CommandKind::Authenticate {
                mechanism,
                initial_response: response.map(|bytes| SaslResponse::Data(Secret::new(bytes))),
            }
        }),
        (text(), proptest::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(username, password)| { CommandKind::Login { username, password: Secret::new(password) } }),
    ]
}

fn mailbox_command() -> impl Strategy<Value = CommandKind> {
    prop_oneof![
        prop_oneof![
            mailbox().prop_map(|mailbox| CommandKind::Select { mailbox }),
            mailbox().prop_map(|mailbox| CommandKind::Examine { mailbox }),
            mailbox().prop_map(|mailbox| CommandKind::Create { mailbox }),
            mailbox().prop_map(|mailbox| CommandKind::Delete { mailbox }),
            mailbox().prop_map(|mailbox| CommandKind::Subscribe { mailbox }),
            mailbox().prop_map(|mailbox| CommandKind::Unsubscribe { mailbox }),
            (mailbox(), mailbox()).prop_map(|(from, to)| CommandKind::Rename { from, to }),
        ],
        (any::<bool>(), "\\PC{0,6}", "[A-Za-z*%./]{0,8}|\\PC{0,6}").prop_map(|(subscribed, reference, pattern)| {
            if subscribed { CommandKind::Lsub { reference, pattern } } else { CommandKind::List { reference, pattern } }
        }),
        (mailbox(), proptest::collection::vec(status_item(), 1..5))
            .prop_map(|(mailbox, items)| CommandKind::Status { mailbox, items }),
        (mailbox(), proptest::collection::vec(flag(), 0..4), proptest::option::of(date_time()), bytes()).prop_map(
            |(mailbox, flags, date_time, message)| CommandKind::Append { mailbox, flags, date_time, message }
        ),
    ]
}

fn selected_command() -> impl Strategy<Value = CommandKind> {
    prop_oneof![
        proptest::option::of(sequence_set()).prop_map(|uids| CommandKind::Expunge { uids }),
        (
            any::<bool>(),
            proptest::option::of(prop_oneof![Just("UTF-8".to_owned()), Just("us-ascii".to_owned())]),
            proptest::collection::vec(search_key(), 1..4)
        )
            .prop_map(|(uid, charset, criteria)| CommandKind::Search { uid, charset, criteria }),
        (any::<bool>(), sequence_set(), fetch_attributes())
            .prop_map(|(uid, set, attributes)| { CommandKind::Fetch { uid, set, attributes } }),
        (any::<bool>(), sequence_set(), store_mode(), any::<bool>(), proptest::collection::vec(flag(), 0..4))
            .prop_map(|(uid, set, mode, silent, flags)| CommandKind::Store { uid, set, mode, silent, flags }),
        (any::<bool>(), any::<bool>(), sequence_set(), mailbox()).prop_map(|(copy, uid, set, mailbox)| {
            if copy { CommandKind::Copy { uid, set, mailbox } } else { CommandKind::Move { uid, set, mailbox } }
        }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    (tag(), command_kind()).prop_map(|(tag, kind)| Command { tag, kind })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn format_then_parse_round_trips(command in command()) {
        let wire = command.to_bytes();
        prop_assert_eq!(
            parse_command(&wire, &Limits::imap()),
            Ok(Parsed::Complete { value: command, consumed_bytes: wire.len() }),
            "{}", String::from_utf8_lossy(&wire)
        );
    }

    #[test]
    fn every_prefix_waits_for_more(command in command()) {
        let wire = command.to_bytes();
        for cut in 0..wire.len() {
            match parse_command(&wire[..cut], &Limits::imap()) {
                Ok(Parsed::NeedsMoreData) => {}
                Ok(Parsed::NeedsLiteral(request)) => {
                    prop_assert!(request.data_offset <= cut);
                    prop_assert!(!request.non_synchronizing);
                }
                other => prop_assert!(false, "cut {} of {:?}: {:?}", cut, String::from_utf8_lossy(&wire), other),
            }
        }
    }

    #[test]
    fn pipelined_commands_parse_one_at_a_time(commands in proptest::collection::vec(command(), 1..5)) {
        let wire: Vec<u8> = commands.iter().flat_map(Command::to_bytes).collect();
        let mut rest = &wire[..];
        for command in commands {
            let Ok(Parsed::Complete { value, consumed_bytes }) = parse_command(rest, &Limits::imap()) else {
                return Err(TestCaseError::fail("expected a command"));
            };
            prop_assert_eq!(value, command);
            rest = &rest[consumed_bytes..];
        }
        prop_assert!(rest.is_empty());
    }

    #[test]
    fn mailbox_names_round_trip(name in "\\PC{0,12}|[&a-z]{0,8}") {
        let wire = encode_mailbox_name(&name);
        prop_assert!(wire.bytes().all(|byte| (b' '..=b'~').contains(&byte)));
        prop_assert_eq!(decode_mailbox_name(wire.as_bytes()), Some(name));
    }

    #[test]
    fn date_times_round_trip_through_unix_time(date_time in date_time()) {
        // A leap second has no Unix time of its own.
        prop_assume!(date_time.second < 60);
        prop_assert_eq!(DateTime::from_unix_seconds(date_time.unix_seconds(), date_time.zone_minutes), Some(date_time));
    }
}
