//! POP3 (RFC 1939) command parsing and reply building (in progress).
