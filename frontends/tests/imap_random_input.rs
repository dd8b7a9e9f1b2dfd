//! The IMAP session under generated input: fragments of valid commands, literals cut short,
//! IDLE without DONE, random bytes, before and after login, fed in random chunks through an
//! in-memory connection. Every session must end when its input does, without a panic, with
//! only whole response lines written. Each case prints its seed; a failing seed replays.

mod imap_harness;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;

use imap_harness::{ACCOUNT, ImapServer, PASSWORD};
use mailvault_frontends::session::imap::{ImapOptions, serve_with};
use mailvault_frontends::session::registry::Protocol;
use mailvault_frontends::session::{SessionContext, SessionIo};

/// Generated sessions per run.
const CASES: u64 = 300;
/// Fragments per generated session.
const FRAGMENTS_MAX: u64 = 40;

const FRAGMENTS: &[&str] = &[
    "a1 ",
    "b2 ",
    "* ",
    "+ ",
    "NOOP",
    "CAPABILITY",
    "LOGOUT",
    "STARTTLS",
    "SELECT INBOX",
    "EXAMINE INBOX",
    "SELECT \"Nope\"",
    "CREATE Work",
    "CREATE \"Work/Sub\"",
    "RENAME Work Play",
    "DELETE Play",
    "LIST \"\" *",
    "LIST \"\" %",
    "LSUB \"\" *",
    "STATUS INBOX (MESSAGES UIDNEXT)",
    "APPEND INBOX {12}\r\nSubject: x\r\n",
    "APPEND INBOX (\\Seen) {5+}\r\nhello",
    "APPEND INBOX {99999999999}",
    "FETCH 1:* (FLAGS UID)",
    "FETCH 1 BODY[]",
    "UID FETCH 1:* (BODY.PEEK[1.2.HEADER.FIELDS (a b)]<0.5> BODYSTRUCTURE ENVELOPE)",
    "FETCH 1 RFC822",
    "STORE 1 +FLAGS (\\Deleted)",
    "UID STORE 1:* -FLAGS.SILENT (\\Seen $x)",
    "STORE 1 FLAGS ()",
    "EXPUNGE",
    "UID EXPUNGE 1:3",
    "CLOSE",
    "UNSELECT",
    "CHECK",
    "COPY 1 Work",
    "UID MOVE 1:* Work",
    "MOVE 2 Nowhere",
    "SEARCH OR FROM x (SUBJECT y) NOT 2:*",
    "UID SEARCH BODY {3}\r\nabc",
    "SEARCH CHARSET KOI8-R ALL",
    "IDLE",
    "DONE",
    "AUTHENTICATE PLAIN",
    "AUTHENTICATE PLAIN =",
    "=",
    "*",
    "NAMESPACE",
    "SUBSCRIBE INBOX",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    "\"",
    "\\",
    "%",
    "{3}",
    "{0}\r\n",
    "{4+}\r\n",
    " ",
    "  ",
    "\r\n",
    "\r\n",
    "\r\n",
    "\r",
    "\n",
    "4294967296",
    "0",
    ":",
    ",",
    "\u{e9}",
    "\0",
];

/// xorshift64*: deterministic, so a failing seed replays exactly.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// A connection whose input is a script and whose output is kept. It claims TLS, so that
/// login is allowed; STARTTLS then answers BAD without calling `start_tls`.
struct ScriptedIo {
    chunks: VecDeque<Vec<u8>>,
    written: Vec<u8>,
}

impl SessionIo for ScriptedIo {
    async fn read_into(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize> {
        let chunk = self.chunks.pop_front().unwrap_or_default();
        buffer.extend_from_slice(&chunk);
        Ok(chunk.len())
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.written.extend_from_slice(bytes);
        Ok(())
    }

    async fn start_tls(&mut self) -> io::Result<()> {
        Err(io::Error::other("no TLS in memory"))
    }

    fn is_tls(&self) -> bool {
        true
    }

    fn peer_address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40_000))
    }
}

fn generate(random: &mut Random) -> Vec<u8> {
    let mut input = Vec::new();
    if random.below(3) > 0 {
        input.extend_from_slice(format!("l LOGIN {ACCOUNT} \"{PASSWORD}\"\r\n").as_bytes());
        if random.below(2) == 0 {
            input.extend_from_slice(b"s SELECT INBOX\r\n");
        }
    }
    for _ in 0..random.below(FRAGMENTS_MAX) {
        if random.below(10) == 0 {
            input.push(random.below(256) as u8);
        } else {
            input.extend_from_slice(FRAGMENTS[random.below(FRAGMENTS.len() as u64) as usize].as_bytes());
        }
    }
    input
}

/// Cuts `input` into chunks of random sizes (the session must not care where reads end).
fn chunks(input: &[u8], random: &mut Random) -> VecDeque<Vec<u8>> {
    let mut chunks = VecDeque::new();
    let mut rest = input;
    while !rest.is_empty() {
        let size = (1 + random.below(64) as usize).min(rest.len());
        let (chunk, remaining) = rest.split_at(size);
        chunks.push_back(chunk.to_vec());
        rest = remaining;
    }
    chunks
}

#[test]
fn generated_input_never_panics_and_every_session_ends() {
    let server = ImapServer::start();
    server.deliver(b"Subject: seed\r\n\r\nA message to fetch, flag and move.\r\n");
    let options = ImapOptions { idle_poll_interval: std::time::Duration::from_millis(5), ..ImapOptions::default() };
    let runtime = compio::runtime::Runtime::new().expect("runtime");
    let (mut logged_in, mut selected) = (0, 0);
    for case in 0..CASES {
        let seed = 0x9e37_79b9_7f4a_7c15 ^ case;
        eprintln!("case {case}: seed {seed:#x}");
        let mut random = Random(seed);
        let input = generate(&mut random);
        let mut io = ScriptedIo { chunks: chunks(&input, &mut random), written: Vec::new() };
        runtime.block_on(async {
            let peer = io.peer_address();
            let live = server.services.registry.connect(Protocol::Imap, peer).expect("register");
            let context = SessionContext::new(server.services.clone(), live, Protocol::Imap, peer);
            let session = serve_with(&mut io, &context, options);
            compio::time::timeout(std::time::Duration::from_secs(30), session)
                .await
                .unwrap_or_else(|_| panic!("seed {seed:#x}: the session did not end with its input"));
        });
        assert!(io.written.starts_with(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN"), "seed {seed:#x}: greeting");
        assert!(io.written.ends_with(b"\r\n"), "seed {seed:#x}: a response line was cut: {:?}", io.written);
        let said = |needle: &[u8]| io.written.windows(needle.len()).any(|window| window == needle);
        logged_in += u32::from(said(b"\r\nl OK"));
        selected += u32::from(said(b"\r\ns OK [READ-WRITE]"));
    }
    // The generator must reach the deeper states, or the test proves little.
    assert!(logged_in > 100 && selected > 50, "{logged_in} sessions logged in, {selected} selected");
    assert_eq!(server.registry.connection_count(), 0, "every session unregistered");
}
