//! `IMAP4rev1` (RFC 3501) command parsing and response building (in progress).
