//! Writing IMAP commands back to the wire (for clients, tests and round-trip checks).

use super::command::{Command, CommandKind, StoreMode};
use super::flag::write_flag_list;
use super::mailbox_name::encode_mailbox_name;
use super::search::write_keys;
use super::string::{write_astring, write_literal, write_string};
use crate::proto::sasl;

impl Command {
    /// Appends the command, CRLF included. Strings that need it are sent as synchronizing
    /// literals, so a real client must wait for "+" at each `{n}`; tests feed it whole.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.tag.as_str().as_bytes());
        out.push(b' ');
        self.kind.write_to(out);
        out.extend_from_slice(b"\r\n");
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

fn write_mailbox(name: &str, out: &mut Vec<u8>) {
    write_astring(encode_mailbox_name(name).as_bytes(), out);
}

fn write_list_pattern(pattern: &str, out: &mut Vec<u8>) {
    let wire = encode_mailbox_name(pattern);
    if !wire.is_empty() && wire.bytes().all(|byte| super::reader::is_astring_char(byte) || byte == b'%' || byte == b'*')
    {
        out.extend_from_slice(wire.as_bytes());
    } else {
        write_string(wire.as_bytes(), out);
    }
}

fn write_uid_prefix(uid: bool, out: &mut Vec<u8>) {
    if uid {
        out.extend_from_slice(b"UID ");
    }
}

impl CommandKind {
    fn write_to(&self, out: &mut Vec<u8>) {
        let simple: &[u8] = match self {
            Self::Capability => b"CAPABILITY",
            Self::Noop => b"NOOP",
            Self::Logout => b"LOGOUT",
            Self::StartTls => b"STARTTLS",
            Self::Idle => b"IDLE",
            Self::Namespace => b"NAMESPACE",
            Self::Check => b"CHECK",
            Self::Close => b"CLOSE",
            Self::Unselect => b"UNSELECT",
            Self::Expunge { uids: None } => b"EXPUNGE",
            _ => {
                self.write_with_arguments(out);
                return;
            }
        };
        out.extend_from_slice(simple);
    }

    fn write_with_arguments(&self, out: &mut Vec<u8>) {
        let mailbox_command = |name: &[u8], mailbox: &str, out: &mut Vec<u8>| {
            out.extend_from_slice(name);
            out.push(b' ');
            write_mailbox(mailbox, out);
        };
        match self {
            Self::Authenticate { mechanism, initial_response } => {
                out.extend_from_slice(b"AUTHENTICATE ");
                out.extend_from_slice(mechanism.as_bytes());
                if let Some(response) = initial_response {
                    out.push(b' ');
                    out.extend_from_slice(sasl::encode_response(response).as_bytes());
                }
            }
            Self::Login { username, password } => {
                out.extend_from_slice(b"LOGIN ");
                write_astring(username.as_bytes(), out);
                out.push(b' ');
                write_astring(password.expose(), out);
            }
            Self::Select { mailbox } => mailbox_command(b"SELECT", mailbox, out),
            Self::Examine { mailbox } => mailbox_command(b"EXAMINE", mailbox, out),
            Self::Create { mailbox } => mailbox_command(b"CREATE", mailbox, out),
            Self::Delete { mailbox } => mailbox_command(b"DELETE", mailbox, out),
            Self::Subscribe { mailbox } => mailbox_command(b"SUBSCRIBE", mailbox, out),
            Self::Unsubscribe { mailbox } => mailbox_command(b"UNSUBSCRIBE", mailbox, out),
            Self::Rename { from, to } => {
                mailbox_command(b"RENAME", from, out);
                out.push(b' ');
                write_mailbox(to, out);
            }
            Self::List { reference, pattern } | Self::Lsub { reference, pattern } => {
                out.extend_from_slice(if matches!(self, Self::List { .. }) { b"LIST " } else { b"LSUB " });
                write_astring(encode_mailbox_name(reference).as_bytes(), out);
                out.push(b' ');
                write_list_pattern(pattern, out);
            }
            Self::Status { mailbox, items } => {
                mailbox_command(b"STATUS", mailbox, out);
                let names: Vec<&str> = items.iter().map(|item| item.name()).collect();
                out.extend_from_slice(format!(" ({})", names.join(" ")).as_bytes());
            }
            Self::Append { mailbox, flags, date_time, message } => {
                mailbox_command(b"APPEND", mailbox, out);
                out.push(b' ');
                if !flags.is_empty() {
                    write_flag_list(flags, out);
                    out.push(b' ');
                }
                if let Some(date_time) = date_time {
                    out.extend_from_slice(format!("\"{date_time}\" ").as_bytes());
                }
                write_literal(message, out);
            }
            _ => self.write_selected(out),
        }
    }

    /// The commands of the selected state.
    fn write_selected(&self, out: &mut Vec<u8>) {
        match self {
            Self::Expunge { uids } => {
                out.extend_from_slice(b"UID EXPUNGE");
                if let Some(uids) = uids {
                    out.extend_from_slice(format!(" {uids}").as_bytes());
                }
            }
            Self::Search { uid, charset, criteria } => {
                write_uid_prefix(*uid, out);
                out.extend_from_slice(b"SEARCH ");
                if let Some(charset) = charset {
                    out.extend_from_slice(b"CHARSET ");
                    write_astring(charset.as_bytes(), out);
                    out.push(b' ');
                }
                write_keys(criteria, out);
            }
            Self::Fetch { uid, set, attributes } => {
                write_uid_prefix(*uid, out);
                out.extend_from_slice(format!("FETCH {set} ").as_bytes());
                attributes.write_to(out);
            }
            Self::Store { uid, set, mode, silent, flags } => {
                write_uid_prefix(*uid, out);
                let sign = match mode {
                    StoreMode::Replace => "",
                    StoreMode::Add => "+",
                    StoreMode::Remove => "-",
                };
                let silent = if *silent { ".SILENT" } else { "" };
                out.extend_from_slice(format!("STORE {set} {sign}FLAGS{silent} ").as_bytes());
                write_flag_list(flags, out);
            }
            Self::Copy { uid, set, mailbox } | Self::Move { uid, set, mailbox } => {
                write_uid_prefix(*uid, out);
                let name = if matches!(self, Self::Copy { .. }) { "COPY" } else { "MOVE" };
                out.extend_from_slice(format!("{name} {set} ").as_bytes());
                write_astring(encode_mailbox_name(mailbox).as_bytes(), out);
            }
            // Written by `write_to` and `write_with_arguments`.
            _ => {}
        }
    }
}
