//! The message parsing path: `imap::envelope::message_structure` (mail-parser) on arbitrary
//! message bytes. ENVELOPE, BODY and BODYSTRUCTURE must each be one well-formed IMAP value of
//! the right shape, so that no message can break out of a FETCH response. POP3's `message_top`
//! rides along: it is always a prefix of the message.
//!
//! Tolerated: mail-parser 0.11.9 has `debug_assert!(false, "Invalid part ID, could not find
//! multipart.")` (src/parsers/message.rs:485), which malformed nesting reaches. Release builds
//! compile it out and parsing goes on; fuzz builds enable debug assertions in every crate, so
//! the harness lets that one panic unwind and skips the input. Debug builds of mailvault panic
//! there too (reported to the frontends owner).
//!
//! mail-parser 0.11.9 can return parts that are not a tree (a multipart that lists itself or an
//! ancestor among its children; `fuzz/corpus/message_structure/regression-cyclic-parts`, 141
//! bytes): envelope.rs describes at most `PARTS_MAX` parts, so those inputs run here too.
#![no_main]

use std::panic::{self, PanicHookInfo};
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use mailvault_frontends::proto::imap::envelope::message_structure;
use mailvault_frontends::proto::pop3::message_top;
use mailvault_fuzz::imap_syntax::{check_body, check_envelope, parse};

const MAIL_PARSER_ASSERTION: &str = "Invalid part ID, could not find multipart.";

fn is_mail_parser_assertion(info: &PanicHookInfo<'_>) -> bool {
    info.payload_as_str() == Some(MAIL_PARSER_ASSERTION)
        && info.location().is_some_and(|location| location.file().contains("mail-parser"))
}

/// Wraps libFuzzer's hook (which aborts on every panic) to let the known assertion unwind.
fn tolerate_mail_parser_assertion() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let fuzzer_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !is_mail_parser_assertion(info) {
                fuzzer_hook(info);
            }
        }));
    });
}

fuzz_target!(|message: &[u8]| {
    tolerate_mail_parser_assertion();
    let Ok(structure) = panic::catch_unwind(|| message_structure(message)) else {
        return;
    };
    let show = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let envelope =
        parse(&structure.envelope).unwrap_or_else(|error| panic!("ENVELOPE {error}: {}", show(&structure.envelope)));
    check_envelope(&envelope).unwrap_or_else(|error| panic!("ENVELOPE {error}: {}", show(&structure.envelope)));
    for (name, bytes) in [("BODY", &structure.body), ("BODYSTRUCTURE", &structure.body_structure)] {
        let body = parse(bytes).unwrap_or_else(|error| panic!("{name} {error}: {}", show(bytes)));
        check_body(&body).unwrap_or_else(|error| panic!("{name} {error}: {}", show(bytes)));
    }
    for lines in [0, 1, 5] {
        let top = message_top(message, lines);
        assert!(message.starts_with(top));
    }
});
