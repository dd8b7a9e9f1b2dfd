#!/usr/bin/env python3
"""Drives mailvault's IMAP session with Python's own imaplib (not our code), one scenario
per run: `imap_client.py SCENARIO`. Ports and credentials come from the environment
(IMAP_PLAIN_PORT, IMAP_TLS_PORT, IMAP_USER, IMAP_PASSWORD). Exit status 0 means every check
passed; lines starting with `RESULT ` tell the Rust test what to verify in the engine."""

import base64
import imaplib
import os
import re
import socket
import ssl
import sys
import time

HOST = "127.0.0.1"
PLAIN_PORT = int(os.environ["IMAP_PLAIN_PORT"])
TLS_PORT = int(os.environ["IMAP_TLS_PORT"])
USER = os.environ["IMAP_USER"]
PASSWORD = os.environ["IMAP_PASSWORD"]
# Every socket operation is bounded: a hung server fails the test instead of hanging it.
TIMEOUT_SECONDS = 20


def tls_context():
    # The test server's certificate is self-signed.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def expect(condition, what):
    if not condition:
        raise AssertionError(what)


def ok(result):
    status, data = result
    expect(status == "OK", f"expected OK, got {status} {data!r}")
    return data


def connect():
    imap = imaplib.IMAP4_SSL(HOST, TLS_PORT, ssl_context=tls_context(), timeout=TIMEOUT_SECONDS)
    ok(imap.login(USER, PASSWORD))
    return imap


def message(subject, body="Hello.\r\n", sender="Ann Example <ann@example.com>", date="Tue, 03 Mar 2026 10:00:00 +0100", extra=""):
    return (
        f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"Message-ID: <{abs(hash(subject))}@example.com>\r\n{extra}\r\n{body}"
    ).encode()


def append(imap, mailbox, raw, flags=None):
    data = ok(imap.append(mailbox, flags, None, raw))
    found = re.search(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    expect(found is not None, f"APPENDUID in {data!r}")
    return int(found.group(2))


def fetch_one(imap, command, *arguments):
    """The literal of the first FETCH response (or the whole text when it has none)."""
    data = ok(imap.uid(command, *arguments) if command == "FETCH" else imap.fetch(*arguments))
    item = data[0]
    if isinstance(item, tuple):
        return item[1]
    # Short data may come as a quoted string instead of a literal.
    quoted = re.search(rb'"((?:[^"\\]|\\.)*)"\)$', item)
    expect(quoted is not None, f"no data in {item!r}")
    return re.sub(rb"\\(.)", rb"\1", quoted.group(1))


def list_names(data):
    names = []
    for line in data:
        found = re.match(rb'\((.*?)\) "/" (.*)$', line)
        expect(found is not None, f"LIST line {line!r}")
        names.append(found.group(2).strip(b'"').decode())
    return names


def send_raw(imap, line):
    imap.send(line)


def read_until_tagged(imap, tag):
    lines = []
    for _ in range(1000):
        line = imap.readline()
        expect(line, "connection closed before the tagged response")
        lines.append(line)
        if line.startswith(tag + b" "):
            return lines
    raise AssertionError("no tagged response")


# --- scenarios -----------------------------------------------------------------------------


def scenario_starttls():
    imap = imaplib.IMAP4(HOST, PLAIN_PORT, timeout=TIMEOUT_SECONDS)
    capabilities = imap.capabilities
    expect("STARTTLS" in capabilities and "LOGINDISABLED" in capabilities, f"{capabilities}")
    expect("AUTH=PLAIN" not in capabilities, f"{capabilities}")
    try:
        imap.login(USER, PASSWORD)
        raise AssertionError("LOGIN in plaintext was accepted")
    except imaplib.IMAP4.error as error:
        expect("STARTTLS" in str(error), f"{error}")
    ok(imap.starttls(ssl_context=tls_context()))
    capabilities = imap.capabilities
    expect("AUTH=PLAIN" in capabilities and "LOGINDISABLED" not in capabilities, f"{capabilities}")
    expect("STARTTLS" not in capabilities and "IDLE" in capabilities and "UIDPLUS" in capabilities, f"{capabilities}")
    ok(imap.login(USER, PASSWORD))
    ok(imap.select("INBOX"))
    imap.logout()


def scenario_starttls_injection():
    """Commands sent together with STARTTLS, before the handshake, must be dropped."""
    raw = socket.create_connection((HOST, PLAIN_PORT), timeout=TIMEOUT_SECONDS)
    reader = raw.makefile("rb")
    expect(reader.readline().startswith(b"* OK"), "greeting")
    raw.sendall(b"a STARTTLS\r\nb CAPABILITY\r\n")
    expect(reader.readline().startswith(b"a OK"), "STARTTLS accepted")
    secure = tls_context().wrap_socket(raw, server_hostname="localhost")
    secure.sendall(b"c NOOP\r\n")
    reader = secure.makefile("rb")
    line = reader.readline()
    expect(line.startswith(b"c OK"), f"the injected command was run: {line!r}")
    secure.sendall(b"d LOGOUT\r\n")
    secure.close()


def scenario_authenticate():
    imap = imaplib.IMAP4_SSL(HOST, TLS_PORT, ssl_context=tls_context(), timeout=TIMEOUT_SECONDS)
    expect("AUTH=PLAIN" in imap.capabilities and "SASL-IR" in imap.capabilities, f"{imap.capabilities}")
    ok(imap.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode()))
    ok(imap.select("INBOX"))
    imap.logout()
    # SASL-IR: the response on the command line, no continuation.
    imap = imaplib.IMAP4_SSL(HOST, TLS_PORT, ssl_context=tls_context(), timeout=TIMEOUT_SECONDS)
    initial = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    status, data = imap._simple_command("AUTHENTICATE", "PLAIN", initial)
    expect(status == "OK", f"{status} {data}")
    imap.shutdown()
    # A wrong password fails without saying why.
    imap = imaplib.IMAP4_SSL(HOST, TLS_PORT, ssl_context=tls_context(), timeout=TIMEOUT_SECONDS)
    try:
        imap.login(USER, "wrong password")
        raise AssertionError("a wrong password was accepted")
    except imaplib.IMAP4.error as error:
        expect("AUTHENTICATIONFAILED" in str(error), f"{error}")
    # A cancelled AUTHENTICATE.
    tag = imap._new_tag()
    imap.send(tag + b" AUTHENTICATE PLAIN\r\n")
    expect(imap.readline().startswith(b"+"), "continuation")
    imap.send(b"*\r\n")
    expect(read_until_tagged(imap, tag)[-1].startswith(tag + b" BAD"), "cancelled")
    imap.shutdown()


def scenario_mailboxes():
    imap = connect()
    ok(imap.create("Work"))
    ok(imap.create("Work/2026"))
    ok(imap.create("Archive/"))  # a trailing delimiter only announces children
    ok(imap.create("Entw&APw-rfe"))  # "Entwürfe" in modified UTF-7
    names = list_names(ok(imap.list()))
    for expected in ["INBOX", "Work", "Work/2026", "Archive", "Entw&APw-rfe"]:
        expect(expected in names, f"{expected} in {names}")
    top = list_names(ok(imap.list("\"\"", "%")))
    expect("Work/2026" not in top and "Work" in top, f"{top}")
    expect(list_names(ok(imap.list("Work/", "%"))) == ["Work/2026"], "children of Work")
    expect(list_names(ok(imap.list("\"\"", "inbox"))) == ["INBOX"], "INBOX matches in any case")
    status, data = imap.create("Work")
    expect(status == "NO" and b"ALREADYEXISTS" in data[0], f"{status} {data}")
    ok(imap.rename("Work", "Projects"))
    names = list_names(ok(imap.list()))
    expect("Projects/2026" in names and "Work" not in names and "Work/2026" not in names, f"{names}")
    ok(imap.delete("Projects/2026"))
    status, _ = imap.delete("INBOX")
    expect(status == "NO", "INBOX cannot be deleted")
    status, data = imap.select("Nonexistent")
    expect(status == "NO" and b"NONEXISTENT" in data[0], f"{status} {data}")
    expect(list_names(ok(imap.lsub())) == list_names(ok(imap.list())), "every mailbox counts as subscribed")
    ok(imap.subscribe("Archive"))
    namespace = ok(imap.namespace())
    expect(namespace[0] == b'(("" "/")) NIL NIL', f"{namespace}")
    append(imap, "Archive", message("For the archive"))
    status = ok(imap.status("Archive", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)"))[0]
    expect(b"MESSAGES 1" in status and b"UNSEEN 1" in status and b"RECENT 0" in status, f"{status}")
    expect(b"UIDNEXT 2" in status, f"{status}")
    ok(imap.select("Archive", readonly=True))
    imap.logout()


MULTIPART = (
    b"From: Ann Example <ann@example.com>\r\nTo: alice@example.org\r\nSubject: Hello\r\n"
    b"Date: Tue, 03 Mar 2026 10:00:00 +0100\r\nMessage-ID: <parts@example.com>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"body text \xc3\xa9\r\n"
    b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n"
    b"--XX--\r\n"
)


def scenario_append_fetch():
    imap = connect()
    uid = append(imap, "INBOX", MULTIPART, r"(\Flagged)")
    count = int(ok(imap.select("INBOX"))[0])
    expect(count == 1, f"{count} messages")
    expect(fetch_one(imap, "FETCH", str(uid), "(BODY.PEEK[])") == MULTIPART, "BODY[] is byte-identical")
    flags = ok(imap.uid("FETCH", str(uid), "(FLAGS)"))[0]
    expect(b"\\Flagged" in flags and b"\\Seen" not in flags, f"PEEK leaves \\Seen unset: {flags}")
    data = ok(imap.uid("FETCH", str(uid), "(BODY[HEADER] BODY[TEXT])"))
    header, text = data[0][1], data[1][1]
    expect(header + text == MULTIPART and header.endswith(b"\r\n\r\n"), "HEADER + TEXT is the message")
    expect(b"\\Seen" in ok(imap.uid("FETCH", str(uid), "(FLAGS)"))[0], "BODY[] sets \\Seen")
    summary = ok(imap.fetch("1", "(UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE FLAGS)"))[0]
    expect(f"RFC822.SIZE {len(MULTIPART)}".encode() in summary, f"{summary}")
    expect(b'"Hello"' in summary and b'"ann" "example.com"' in summary, f"ENVELOPE in {summary}")
    expect(b'"MIXED"' in summary and b'"APPLICATION" "OCTET-STREAM"' in summary, f"BODYSTRUCTURE in {summary}")
    expect(re.search(rb'INTERNALDATE "\d\d-\w{3}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}"', summary), f"{summary}")
    expect(fetch_one(imap, "FETCH", str(uid), "(BODY.PEEK[1])") == b"body text \xc3\xa9", "part 1")
    expect(fetch_one(imap, "FETCH", str(uid), "(BODY.PEEK[2])") == b"AAECAwQ=", "part 2")
    mime = fetch_one(imap, "FETCH", str(uid), "(BODY.PEEK[2.MIME])")
    expect(mime.startswith(b"Content-Type: application/octet-stream"), f"{mime!r}")
    expect(fetch_one(imap, "FETCH", str(uid), "(BODY.PEEK[]<0.10>)") == MULTIPART[:10], "partial")
    partial = ok(imap.uid("FETCH", str(uid), "(BODY.PEEK[]<5.3>)"))[0]
    partial = partial[0] if isinstance(partial, tuple) else partial
    expect(b"BODY[]<5>" in partial, f"the response names the origin: {partial}")
    fields = fetch_one(imap, "FETCH", str(uid), "(BODY.PEEK[HEADER.FIELDS (Subject FROM)])")
    expect(fields == b"From: Ann Example <ann@example.com>\r\nSubject: Hello\r\n\r\n", f"{fields!r}")
    expect(fetch_one(imap, "FETCH", str(uid), "(RFC822)") == MULTIPART, "RFC822")
    # A message larger than one TLS record and one output flush, sent as one literal.
    big = message("Big", body="".join(f"line {n:07d} of a long message\r\n" for n in range(12000)))
    big_uid = append(imap, "INBOX", big)
    expect(fetch_one(imap, "FETCH", str(big_uid), "(BODY.PEEK[])") == big, "a big message is byte-identical")
    # LITERAL+: the data follows without waiting for a continuation.
    tag = imap._new_tag()
    small = message("Non-synchronizing")
    imap.send(tag + b" APPEND INBOX (\\Draft) {" + str(len(small)).encode() + b"+}\r\n" + small + b"\r\n")
    lines = read_until_tagged(imap, tag)
    expect(lines[-1].startswith(tag + b" OK [APPENDUID"), f"{lines}")
    ok(imap.noop())
    expect(int(ok(imap.select("INBOX"))[0]) == 3, "three messages")
    print(f"RESULT uid {uid}")
    imap.logout()


def scenario_fetch_many():
    """One FETCH of many bodies (read ahead by the server) answers each message once, in order,
    byte-identical: small ones, ones of hundreds of KiB, and one larger than the read-ahead
    window."""
    imap = connect()
    sizes = [n * 37 % 5000 for n in range(40)] + [300_000, 40, 700_000, 1_500_000, 60, 250_000]
    sent = {}
    for n, size in enumerate(sizes):
        raw = message(f"Many {n}", body="x" * size + "\r\n")
        sent[append(imap, "INBOX", raw)] = raw
    ok(imap.select("INBOX", readonly=True))
    data = ok(imap.uid("FETCH", "1:*", "(UID BODY.PEEK[])"))
    answers = [item for item in data if isinstance(item, tuple)]
    uids = [int(re.search(rb"UID (\d+)", prefix).group(1)) for prefix, _ in answers]
    expect(uids == sorted(sent), f"one answer per message, in uid order: {uids}")
    for (prefix, body), uid in zip(answers, uids):
        expect(body == sent[uid], f"uid {uid} is byte-identical ({len(body)} of {len(sent[uid])} bytes)")
    numbers = [int(prefix.split()[0]) for prefix, _ in answers]
    expect(numbers == list(range(1, len(sent) + 1)), "sequence numbers in order")
    imap.logout()


def scenario_flags():
    imap = connect()
    uids = [append(imap, "INBOX", message(f"Flags {n}")) for n in range(3)]
    ok(imap.select("INBOX"))
    data = ok(imap.store("1", "+FLAGS", r"(\Seen \Flagged)"))
    expect(data[0] == b"1 (FLAGS (\\Seen \\Flagged))", f"{data}")
    data = ok(imap.store("1", "-FLAGS", r"(\Flagged)"))
    expect(data[0] == b"1 (FLAGS (\\Seen))", f"{data}")
    data = ok(imap.store("2", "FLAGS.SILENT", "($Work Junk)"))
    expect(data == [None], f"SILENT sends no FETCH: {data}")
    data = ok(imap.uid("STORE", str(uids[2]), "+FLAGS", r"(\Answered)"))
    expect(data[0] == f"3 (FLAGS (\\Answered) UID {uids[2]})".encode(), f"{data}")
    flags = ok(imap.fetch("1:3", "(FLAGS)"))
    expect(flags == [b"1 (FLAGS (\\Seen))", b"2 (FLAGS ($Work Junk))", b"3 (FLAGS (\\Answered))"], f"{flags}")
    status, data = imap.store("1", "+FLAGS", r"(\Bogus)")
    expect(status == "NO", f"{status} {data}")
    try:
        imap.store("99", "+FLAGS", r"(\Seen)")
        raise AssertionError("STORE on a message that does not exist")
    except imaplib.IMAP4.error as error:
        expect("sequence" in str(error), f"{error}")
    # Another session sees the change at its next NOOP; EXAMINE changes nothing.
    other = connect()
    ok(other.select("INBOX", readonly=True))
    status, _ = other.store("1", "+FLAGS", r"(\Deleted)")
    expect(status == "NO", "STORE in a read-only mailbox")
    ok(other.fetch("3", "(BODY[])"))
    ok(imap.store("3", "+FLAGS", r"(\Flagged)"))
    status, data = other.noop()
    expect(status == "OK", f"{status}")
    fetched = other.untagged_responses.get("FETCH", [])
    expect(any(b"\\Flagged" in item and b"\\Answered" in item for item in fetched), f"{fetched}")
    expect(b"\\Seen" not in ok(imap.fetch("3", "(FLAGS)"))[0], "EXAMINE did not set \\Seen")
    other.logout()
    imap.logout()


def scenario_copy_move_expunge():
    imap = connect()
    for subject in ["One", "Two", "Three"]:
        append(imap, "INBOX", message(subject))
    ok(imap.create("Archive"))
    ok(imap.select("INBOX"))
    status, data = imap.copy("1:2", "Archive")
    expect(status == "OK" and re.search(rb"\[COPYUID \d+ 1:2 1:2\]", data[0]), f"{data}")
    status, data = imap.copy("1", "Nowhere")
    expect(status == "NO" and b"TRYCREATE" in data[0], f"{status} {data}")
    status, data = imap.uid("MOVE", "3", "Archive")
    expect(status == "OK", f"{status} {data}")
    expect(imap.untagged_responses.pop("EXPUNGE", None) == [b"3"], f"{imap.untagged_responses}")
    ok(imap.store("1", "+FLAGS", r"(\Deleted)"))
    data = ok(imap.expunge())
    expect(data == [b"1"], f"EXPUNGE responses: {data}")
    expect(int(ok(imap.select("INBOX"))[0]) == 1, "one message left in INBOX")
    expect(int(ok(imap.select("Archive"))[0]) == 3, "three in Archive")
    # UID EXPUNGE removes only the named \Deleted messages.
    ok(imap.store("1:2", "+FLAGS", r"(\Deleted)"))
    status, data = imap.uid("EXPUNGE", "2")
    expect(status == "OK" and imap.untagged_responses.get("EXPUNGE") == [b"2"], f"{imap.untagged_responses}")
    # CLOSE expunges silently.
    ok(imap.close())
    expect(int(ok(imap.select("Archive"))[0]) == 1, "CLOSE expunged \\Deleted")
    ok(imap.unselect() if hasattr(imap, "unselect") else imap._simple_command("UNSELECT"))
    imap.logout()
    print("RESULT expunged 3")


def scenario_search():
    imap = connect()
    append(imap, "INBOX", message("Quarterly report", date="Sun, 01 Mar 2026 09:00:00 +0000"))
    append(imap, "INBOX", message("Lunch", sender="Bob <bob@example.net>", body="Pineapple pizza?\r\n" + "x" * 20000 + "\r\n", date="Tue, 10 Mar 2026 12:00:00 +0000"))
    append(imap, "INBOX", message("Report draft", sender="Carol <carol@example.org>", date="Thu, 05 Mar 2026 09:00:00 +0000"), r"(\Flagged $Work)")
    ok(imap.select("INBOX"))

    def search(*criteria, uid=False):
        data = ok(imap.uid("SEARCH", *criteria) if uid else imap.search(None, *criteria))
        return [int(number) for number in data[0].split()]

    expect(search("SUBJECT", "report") == [1, 3], "SUBJECT")
    expect(search("FROM", "bob") == [2], "FROM")
    expect(search("BODY", "pineapple") == [2], "BODY")
    expect(search("TEXT", "carol@example") == [3], "TEXT")
    expect(search("LARGER", "10000") == [2], "LARGER")
    expect(search("FLAGGED") == [3] and search("UNFLAGGED") == [1, 2], "FLAGGED")
    expect(search("KEYWORD", "$Work") == [3], "KEYWORD")
    expect(search("OR", "FROM", "ann", "FROM", "carol") == [1, 3], "OR")
    expect(search("NOT", "SUBJECT", "report") == [2], "NOT")
    expect(search("SENTSINCE", "5-Mar-2026") == [2, 3], "SENTSINCE")
    expect(search("SENTBEFORE", "5-Mar-2026") == [1], "SENTBEFORE")
    expect(search("2:3", "UNSEEN") == [2, 3], "sequence set")
    expect(search("HEADER", "Subject", "lunch") == [2], "HEADER")
    expect(search("SINCE", time.strftime("%d-%b-%Y", time.gmtime(time.time() - 86400))) == [1, 2, 3], "SINCE")
    expect(search("UID", "2:*", uid=True) == [2, 3], "UID SEARCH")
    expect(search("ALL", uid=True) == [1, 2, 3], "UID SEARCH ALL")
    status, data = imap.search("KOI8-R", "SUBJECT", "x")
    expect(status == "NO" and b"BADCHARSET" in data[0], f"{status} {data}")
    expect(search("CHARSET", "UTF-8", "SUBJECT", "draft") == [3], "CHARSET UTF-8")
    imap.logout()


def scenario_search_limits():
    """The server allows 2 bodies and 15,000 bytes per SEARCH: a search that would read more is
    refused with NO [LIMIT] before it reads anything; one within both runs."""
    imap = connect()
    append(imap, "INBOX", message("Quarterly report"))
    append(imap, "INBOX", message("Lunch", body="Pineapple pizza?\r\n" + "x" * 20000 + "\r\n"), r"(\Flagged)")
    append(imap, "INBOX", message("Report draft"))
    ok(imap.select("INBOX"))

    def refused(*criteria):
        status, data = imap.search(None, *criteria)
        return status == "NO" and data[0].startswith(b"[LIMIT]")

    expect(refused("BODY", "pineapple"), "three bodies are over the limit of two")
    expect(refused("1:2", "BODY", "pineapple"), "20 KB of bodies are over the limit of 15,000 bytes")
    expect(ok(imap.search(None, "1,3", "SUBJECT", "quarterly")) == [b"1"], "two small bodies are within both")
    expect(ok(imap.search(None, "FLAGGED")) == [b"2"], "keys the view decides read no body")
    imap.logout()


def scenario_idle():
    imap = connect()
    count = int(ok(imap.select("INBOX"))[0])
    tag = imap._new_tag()
    imap.send(tag + b" IDLE\r\n")
    expect(imap.readline().startswith(b"+ "), "IDLE continuation")
    print("IDLING", flush=True)  # the Rust test now delivers a message through the engine
    line = imap.readline()
    expect(line == f"* {count + 1} EXISTS\r\n".encode(), f"delivery announced while idling: {line!r}")
    # Changes made by another session arrive too.
    other = connect()
    ok(other.select("INBOX"))
    ok(other.store(str(count + 1), "+FLAGS", r"(\Flagged)"))
    line = imap.readline()
    expect(line.startswith(f"* {count + 1} FETCH (FLAGS (\\Flagged) UID".encode()), f"{line!r}")
    ok(other.store(str(count + 1), "+FLAGS", r"(\Deleted)"))
    ok(other.expunge())
    # The poll may also catch \Deleted set before the expunge: read up to three lines.
    lines = []
    while f"* {count + 1} EXPUNGE\r\n".encode() not in lines:
        expect(len(lines) < 3, f"expunge announced: {lines!r}")
        lines.append(imap.readline())
    imap.send(b"DONE\r\n")
    expect(read_until_tagged(imap, tag)[-1].startswith(tag + b" OK"), "IDLE ended by DONE")
    # NOOP reports changes as well.
    append(other, "INBOX", message("After idle"))
    ok(imap.noop())
    expect(imap.untagged_responses.get("EXISTS", [])[-1:] == [str(count + 1).encode()], f"{imap.untagged_responses}")
    other.logout()
    imap.logout()


def scenario_bad_input():
    raw = tls_context().wrap_socket(socket.create_connection((HOST, TLS_PORT), timeout=TIMEOUT_SECONDS), server_hostname="localhost")
    reader = raw.makefile("rb")

    def exchange(command, tag):
        raw.sendall(command)
        for _ in range(100):
            line = reader.readline()
            expect(line, f"connection closed after {command[:40]!r}")
            if line.startswith(tag + b" ") or (tag == b"*" and line.startswith(b"* BAD")):
                return line
        raise AssertionError("no reply")

    expect(reader.readline().startswith(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN"), "greeting")
    expect(exchange(b"a1 FROB\r\n", b"a1").startswith(b"a1 BAD"), "unknown command")
    expect(exchange(b"+++\r\n", b"*").startswith(b"* BAD"), "no tag")
    expect(exchange(b"a2 FETCH 1 FLAGS\r\n", b"a2").startswith(b"a2 BAD"), "FETCH before login")
    expect(exchange(b"a3 LOGIN alice {999999}\r\n", b"a3").startswith(b"a3 BAD"), "literal over the limit, no continuation")
    expect(exchange(b"a4 " + b"x" * 20000 + b"\r\n", b"*").startswith(b"* BAD"), "over-long line")
    expect(exchange(b"a5 NOOP\r\n", b"a5").startswith(b"a5 OK"), "the session goes on")
    login = f"a6 LOGIN {USER} \"{PASSWORD}\"\r\n".encode()
    expect(exchange(login, b"a6").startswith(b"a6 OK"), "login")
    expect(exchange(b"a7 SELECT INBOX\r\n", b"a7").startswith(b"a7 OK"), "select")
    expect(exchange(b"a8 FETCH 5 FLAGS\r\n", b"a8").startswith(b"a8 BAD"), "no message 5")
    expect(exchange(b"a9 STORE 1:* +FLAGS (\\Seen)\r\n", b"a9").startswith(b"a9 BAD"), "empty mailbox")
    expect(exchange(b"b1 UID FETCH 1:* FLAGS\r\n", b"b1").startswith(b"b1 OK"), "UIDs need not exist")
    expect(exchange(b"b2 SEARCH (((((((((((((((((((((((((((((((((((ALL)))))))))))))))))))))))))))))))))))\r\n", b"b2").startswith(b"b2 BAD"), "nesting")
    raw.sendall(b"b3 APPEND Nowhere {3}\r\n")
    expect(reader.readline().startswith(b"+ "), "continuation for a synchronizing literal")
    expect(exchange(b"abc\r\n", b"b3").startswith(b"b3 NO [TRYCREATE]"), "append to a missing mailbox")
    expect(exchange(b"b4 APPEND INBOX {999999999}\r\n", b"b4").startswith(b"b4 BAD"), "message over the limit")
    expect(exchange(b"b5 APPEND INBOX (\\Bogus) {3}\r\n", b"+").startswith(b"+ "), "continuation")
    expect(exchange(b"abc\r\n", b"b5").startswith(b"b5 NO"), "refused flag")
    expect(exchange(b"b6 CREATE \"\"\r\n", b"b6").startswith(b"b6 BAD"), "empty name")
    expect(exchange(b"b7 STATUS INBOX (MESSAGES)\r\n", b"b7").startswith(b"b7 OK"), "still fine")
    # An oversized non-synchronizing literal is already on its way: BAD, then BYE and close.
    raw.sendall(b"b8 APPEND INBOX {999999999+}\r\n")
    lines = reader.readlines()
    expect(lines[0].startswith(b"b8 BAD") and lines[-1].startswith(b"* BYE"), f"{lines}")
    raw.close()
    # A client sending nothing but garbage is cut off.
    raw = tls_context().wrap_socket(socket.create_connection((HOST, TLS_PORT), timeout=TIMEOUT_SECONDS), server_hostname="localhost")
    raw.sendall(b"".join(f"g{n} FROB\r\n".encode() for n in range(30)))
    lines = raw.makefile("rb").readlines()
    expect(lines[-1].startswith(b"* BYE"), f"{lines[-3:]}")
    expect(sum(1 for line in lines if b" BAD " in line) == 20, "twenty BAD replies, then BYE")
    raw.close()


def scenario_remote_logout():
    imap = connect()
    ok(imap.select("INBOX"))
    print("LOGGED-IN", flush=True)  # the Rust test now logs the account out remotely
    line = imap.readline()
    expect(line.startswith(b"* BYE") and b"remotely" in line, f"{line!r}")
    expect(imap.readline() == b"", "the server closed the connection")


SCENARIOS = {name[len("scenario_"):]: function for name, function in globals().items() if name.startswith("scenario_")}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]]()
    print("PASSED", flush=True)
