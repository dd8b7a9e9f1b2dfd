//! The CAPABILITY list, which depends on the connection: STARTTLS and LOGINDISABLED before
//! TLS, AUTH=PLAIN only once passwords cannot be read off the wire.

/// Extensions we implement in every state.
const EXTENSIONS: [&str; 7] = ["LITERAL+", "SASL-IR", "UIDPLUS", "IDLE", "MOVE", "UNSELECT", "NAMESPACE"];

/// The capabilities to announce. `tls` is whether the connection is encrypted now,
/// `tls_available` whether STARTTLS can make it so.
pub(super) fn capabilities(tls: bool, tls_available: bool) -> Vec<&'static str> {
    let mut list = vec!["IMAP4rev1"];
    if tls {
        list.push("AUTH=PLAIN");
    } else {
        if tls_available {
            list.push("STARTTLS");
        }
        // RFC 3501 §6.2.3: no LOGIN (nor AUTHENTICATE PLAIN) in plaintext.
        list.push("LOGINDISABLED");
    }
    list.extend(EXTENSIONS);
    list
}

/// The capabilities once logged in (login needs TLS, so no STARTTLS or AUTH= then).
pub(super) fn authenticated_capabilities() -> Vec<&'static str> {
    let mut list = vec!["IMAP4rev1"];
    list.extend(EXTENSIONS);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_offers_starttls_and_disables_login() {
        let list = capabilities(false, true);
        assert!(list.contains(&"STARTTLS") && list.contains(&"LOGINDISABLED"));
        assert!(!list.contains(&"AUTH=PLAIN"));
        let list = capabilities(true, true);
        assert!(!list.contains(&"STARTTLS") && !list.contains(&"LOGINDISABLED"));
        assert!(list.contains(&"AUTH=PLAIN") && list.contains(&"IDLE") && list.contains(&"UIDPLUS"));
    }
}
