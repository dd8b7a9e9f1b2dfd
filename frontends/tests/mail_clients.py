#!/usr/bin/env python3
"""Real mail clients (Python's smtplib.LMTP, poplib and imaplib, and raw sockets for what no
client sends) driving a mailvault server on loopback, for the Rust integration tests.

Usage: mail_clients.py SCENARIO JSON-ARGUMENTS
Every scenario prints one JSON document on its last line of output (message bytes as hex). Every
socket has a timeout, so no scenario can hang.
"""

import base64
import imaplib
import json
import poplib
import smtplib
import socket
import ssl
import sys
import threading
import time

HOST = "127.0.0.1"
TIMEOUT_SECONDS = 20


def tls_context(arguments):
    context = ssl.create_default_context(cafile=arguments["cafile"])
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def lmtp_transaction(arguments):
    """LHLO [STARTTLS LHLO] MAIL RCPT... DATA with one reply per accepted recipient."""
    message = bytes.fromhex(arguments["message"])
    client = smtplib.LMTP(HOST, arguments["lmtp_port"], timeout=TIMEOUT_SECONDS)
    result = {}
    code, reply = client.ehlo("client.test")
    result["lhlo"] = [code, text(reply)]
    if arguments.get("starttls"):
        code, reply = client.starttls(context=tls_context(arguments))
        result["starttls"] = [code, text(reply)]
        code, reply = client.ehlo("client.test")
        result["lhlo_after_tls"] = [code, text(reply)]
    options = arguments.get("mail_options", [])
    code, reply = client.mail(arguments["sender"], options)
    result["mail"] = [code, text(reply)]
    result["rcpt"] = []
    accepted = 0
    for recipient in arguments["recipients"]:
        code, reply = client.rcpt(recipient)
        result["rcpt"].append([code, text(reply)])
        accepted += code == 250
    result["data"] = []
    if accepted:
        # smtplib reads one reply after the body; LMTP sends one per accepted recipient.
        code, reply = client.data(message)
        result["data"].append([code, text(reply)])
        for _ in range(accepted - 1):
            code, reply = client.getreply()
            result["data"].append([code, text(reply)])
    code, reply = client.docmd("QUIT")
    result["quit"] = [code, text(reply)]
    client.close()
    return result


def numbered_message(number):
    return ("Message-Id: <%d@mailvault.test>\r\nSubject: message %d\r\n\r\n%s\r\n" % (number, number, "x" * 2000)).encode()


def lmtp_deliver_many(arguments):
    """Delivers numbered messages over `connections` parallel connections, one transaction at a
    time each, until `count` or the server goes away; prints each acknowledged number as soon
    as its 250 arrives (the SIGTERM test)."""
    connections = arguments.get("connections", 1)
    deadline = time.monotonic() + arguments.get("seconds", 30)
    lock = threading.Lock()
    acknowledged = []
    refused = []

    def deliver(first):
        client = None
        for number in range(first, arguments["count"], connections):
            if time.monotonic() > deadline:
                return
            try:
                if client is None:
                    client = smtplib.LMTP(HOST, arguments["lmtp_port"], timeout=TIMEOUT_SECONDS)
                    client.ehlo("client.test")
                client.mail("sender@example.org")
                code, _ = client.rcpt(arguments["recipient"])
                if code == 250:
                    code, _ = client.data(numbered_message(number))
            except (smtplib.SMTPException, OSError) as error:
                with lock:
                    refused.append([number, repr(error)])
                return
            with lock:
                if code != 250:
                    refused.append([number, code])
                    return
                acknowledged.append(number)
                print(json.dumps({"acknowledged": number}), flush=True)

    threads = [threading.Thread(target=deliver, args=(first,)) for first in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"acknowledged": sorted(acknowledged), "refused": refused}


def pop3_connect(arguments, mode):
    if mode == "ssl":
        return poplib.POP3_SSL(HOST, arguments["pop3s_port"], context=tls_context(arguments), timeout=TIMEOUT_SECONDS)
    client = poplib.POP3(HOST, arguments["pop3_port"], timeout=TIMEOUT_SECONDS)
    if mode == "stls":
        client.stls(tls_context(arguments))
    return client


def pop3_message(lines):
    return b"".join(line + b"\r\n" for line in lines).hex()


def pop3_step(client, step, arguments):
    name, parameters = step[0], step[1:]
    if name == "capa":
        return {key: value for key, value in client.capa().items()}
    if name == "user":
        return text(client.user(parameters[0]))
    if name == "pass":
        return text(client.pass_(parameters[0]))
    if name == "auth_plain":
        user, password, initial = parameters
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        if initial:
            return text(client._shortcmd("AUTH PLAIN " + token))
        client._putcmd("AUTH PLAIN")
        challenge = client._getline()[0]
        if not challenge.startswith(b"+"):
            raise poplib.error_proto(challenge)
        return text(client._shortcmd(token))
    if name == "stls":
        return text(client.stls(tls_context(arguments)))
    if name == "stat":
        return list(client.stat())
    if name == "list":
        response, lines, _ = client.list()
        return [text(line) for line in lines]
    if name == "uidl":
        if parameters:
            return text(client.uidl(parameters[0]))
        response, lines, _ = client.uidl()
        return [text(line) for line in lines]
    if name == "retr":
        response, lines, _ = client.retr(parameters[0])
        return pop3_message(lines)
    if name == "top":
        response, lines, _ = client.top(parameters[0], parameters[1])
        return pop3_message(lines)
    if name == "dele":
        return text(client.dele(parameters[0]))
    if name == "rset":
        return text(client.rset())
    if name == "noop":
        return text(client.noop())
    if name == "raw":
        return text(client._shortcmd(parameters[0]))
    if name == "quit":
        return text(client.quit())
    if name == "wait":
        # Tell the test we are here, then wait for its go-ahead on standard input.
        print(json.dumps({"waiting": True}), flush=True)
        sys.stdin.readline()
        return "resumed"
    raise ValueError("unknown step %r" % name)


def pop3_session(arguments):
    """Runs `steps` in one POP3 session; each result, or the error that step raised."""
    client = pop3_connect(arguments, arguments.get("mode", "ssl"))
    results = [text(client.getwelcome())]
    for step in arguments["steps"]:
        try:
            results.append({"ok": pop3_step(client, step, arguments)})
        except poplib.error_proto as error:
            results.append({"error": text(error.args[0]) if error.args else ""})
        except (OSError, EOFError) as error:
            results.append({"closed": repr(error)})
            break
    return {"results": results}


def starttls_injection(arguments):
    """Sends a command in the same packet as STARTTLS/STLS; the server must ignore it, so the
    first answer inside TLS is the one to the command sent after the handshake."""
    protocol = arguments["protocol"]
    port = arguments["lmtp_port"] if protocol == "lmtp" else arguments["pop3_port"]
    sock = socket.create_connection((HOST, port), timeout=TIMEOUT_SECONDS)
    reader = sock.makefile("rb")
    reader.readline()
    if protocol == "lmtp":
        sock.sendall(b"LHLO client.test\r\n")
        while not reader.readline()[3:4] == b" ":
            pass
        sock.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
    else:
        sock.sendall(b"STLS\r\nCAPA\r\n")
    go_ahead = reader.readline()
    tls = tls_context(arguments).wrap_socket(sock, server_hostname="localhost")
    tls_reader = tls.makefile("rb")
    tls.sendall(b"QUIT\r\n")
    first = tls_reader.readline()
    tls.close()
    return {"go_ahead": text(go_ahead).strip(), "first_reply_in_tls": text(first).strip()}


def imap_login(arguments):
    """LOGIN over IMAPS; the tagged reply, or the NO's text (with its response code)."""
    client = imaplib.IMAP4_SSL(HOST, arguments["imaps_port"], ssl_context=tls_context(arguments), timeout=TIMEOUT_SECONDS)
    try:
        typ, data = client.login(arguments["user"], arguments["password"])
        result = {"ok": text(data[0])}
        client.logout()
    except imaplib.IMAP4.error as error:
        result = {"no": text(error.args[0]) if error.args else ""}
        client.shutdown()
    return result


def imap_select(arguments):
    """LOGIN, then SELECT a mailbox: its UIDVALIDITY and its uids (UID SEARCH ALL)."""
    client = imaplib.IMAP4_SSL(HOST, arguments["imaps_port"], ssl_context=tls_context(arguments), timeout=TIMEOUT_SECONDS)
    client.login(arguments["user"], arguments["password"])
    client.select(arguments["mailbox"], readonly=True)
    _, validity = client.response("UIDVALIDITY")
    _, found = client.uid("SEARCH", None, "ALL")
    client.logout()
    return {"uidvalidity": int(validity[0]), "uids": [int(uid) for uid in found[0].split()]}


SCENARIOS = {
    "imap_login": imap_login,
    "imap_select": imap_select,
    "lmtp_transaction": lmtp_transaction,
    "lmtp_deliver_many": lmtp_deliver_many,
    "pop3_session": pop3_session,
    "starttls_injection": starttls_injection,
}

if __name__ == "__main__":
    scenario, arguments = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(SCENARIOS[scenario](arguments)), flush=True)
