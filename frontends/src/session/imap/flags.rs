//! IMAP flags to and from the engine's [`Flags`] (system bits plus keywords).

use mailvault_engine::Flags;

use crate::proto::imap::Flag;

/// The system flags in the order we list them, with their engine bits.
const SYSTEM_FLAGS: [(Flag, u8); 5] = [
    (Flag::Seen, Flags::SEEN),
    (Flag::Answered, Flags::ANSWERED),
    (Flag::Flagged, Flags::FLAGGED),
    (Flag::Deleted, Flags::DELETED),
    (Flag::Draft, Flags::DRAFT),
];

/// The flags as IMAP lists them.
pub(super) fn to_imap(flags: &Flags) -> Vec<Flag> {
    let mut list: Vec<Flag> =
        SYSTEM_FLAGS.iter().filter(|(_, bit)| flags.contains(*bit)).map(|(flag, _)| flag.clone()).collect();
    list.extend(flags.keywords.iter().cloned().map(Flag::Keyword));
    list
}

/// The system flags every mailbox defines (FLAGS and PERMANENTFLAGS).
pub(super) fn system_flags() -> Vec<Flag> {
    SYSTEM_FLAGS.iter().map(|(flag, _)| flag.clone()).collect()
}

/// The engine flags for a client's list. `\Recent` is the server's to set and is ignored
/// (RFC 3501 §2.3.2); a `\`-flag we do not know is refused with its name. Keywords compare
/// case-insensitively (RFC 3501 §9 flag-keyword is an atom; clients differ in case).
pub(super) fn from_imap(list: &[Flag]) -> Result<Flags, String> {
    let mut flags = Flags::default();
    for flag in list {
        match flag {
            Flag::Recent => {}
            Flag::Extension(name) => return Err(format!("\\{name}")),
            Flag::Keyword(keyword) => {
                if !flags.keywords.iter().any(|known| known.eq_ignore_ascii_case(keyword)) {
                    flags.keywords.push(keyword.clone());
                }
            }
            system => {
                if let Some((_, bit)) = SYSTEM_FLAGS.iter().find(|(known, _)| known == system) {
                    flags.system |= bit;
                }
            }
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let list = vec![Flag::Seen, Flag::Deleted, Flag::Keyword("$Forwarded".into())];
        let flags = from_imap(&list).unwrap();
        assert_eq!(flags.system, Flags::SEEN | Flags::DELETED);
        assert_eq!(to_imap(&flags), list);
        assert_eq!(from_imap(&[Flag::Recent]).unwrap(), Flags::default());
        assert_eq!(from_imap(&[Flag::Extension("Bogus".into())]), Err("\\Bogus".to_owned()));
        let doubled = from_imap(&[Flag::Keyword("Junk".into()), Flag::Keyword("junk".into())]).unwrap();
        assert_eq!(doubled.keywords, vec!["Junk".to_owned()]);
    }
}
