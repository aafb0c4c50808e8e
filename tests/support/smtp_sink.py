"""Recording SMTP sink and OAuth2 introspection endpoint for pushback's integration tests.

Started by tests/support (MailServers::start) with Debian's /usr/bin/python3 and
python3-aiosmtpd; never run by hand in CI. It listens on loopback only:

  --smtp-port    SMTP; STARTTLS offered, optional; AUTH offered, optional
  --smtps-port   implicit TLS; AUTH required before MAIL
                 AUTH is PLAIN or LOGIN against the users file, or XOAUTH2 with a token
  --oauth-port   HTTP; Dovecot's oauth2 passdb posts "token=..." here (introspection_mode
                 = post) and gets {"active": true, "username": USER} only for a known token
  --introspection-url
                 instead of the fixed tokens, XOAUTH2 asks this RFC 7662 endpoint (the OAuth2
                 tests' authorization server) whether the bearer token is live, and for whom

A test can script a refusal: while <spool>/refuse holds a reply line, every RCPT gets it.

Every accepted message is stored unchanged as <spool>/<n>.eml, then one JSON line is
appended to <spool>/messages.jsonl, before the client gets its 250: a test that saw its
send succeed can read the record at once.

The sink exits when its stdin reaches EOF (the test process died without Drop running);
it then also stops the Dovecot master named by --dovecot-pidfile so nothing outlives the
test binary.
"""

import argparse
import base64
import json
import logging
import os
import signal
import ssl
import sys
import threading
import urllib.parse
import urllib.request
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword

log = logging.getLogger("smtp-sink")


def load_users(path):
    """Dovecot passwd-file lines: "user:{PLAIN}password::::::"."""
    users = {}
    with open(path) as f:
        for line in f:
            fields = line.strip().split(":")
            if len(fields) >= 2 and fields[0]:
                users[fields[0]] = fields[1].removeprefix("{PLAIN}")
    return users


class Authenticator:
    def __init__(self, users):
        self.users = users

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = self.users.get(login.split("@")[0]) == password
        log.info("AUTH %s %s user=%s", mechanism, "ok" if ok else "refused", login)
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)


class TolerantSMTP(SMTP):
    """aiosmtpd 1.4 answers 555 to the RFC 4954 AUTH= parameter of MAIL FROM, which a
    server that offers AUTH must accept; drop it before aiosmtpd checks parameters.
    Also offers AUTH XOAUTH2 (token -> user in `tokens`), as Gmail and Outlook do."""

    tokens = {}
    introspection_url = None

    @classmethod
    def token_user(cls, bearer):
        """The user a bearer token logs in as, or None."""
        if cls.introspection_url is None:
            return cls.tokens.get(bearer)
        data = urllib.parse.urlencode({"token": bearer}).encode()
        try:
            with urllib.request.urlopen(cls.introspection_url, data=data, timeout=10) as r:
                answer = json.load(r)
        except (OSError, ValueError) as e:
            log.warning("introspection failed: %s", e)
            return None
        return answer.get("username") if answer.get("active") is True else None

    async def auth_XOAUTH2(self, _, args):
        if len(args) == 1:
            response = await self.challenge_auth("")
            if response is MISSING:
                return AuthResult(success=False)
        else:
            try:
                response = base64.b64decode(args[1].encode(), validate=True)
            except ValueError:
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        fields = dict(f.split("=", 1) for f in response.decode("utf-8", "replace").split("\x01")
                      if "=" in f)
        user = fields.get("user", "")
        bearer = fields.get("auth", "").removeprefix("Bearer ")
        ok = bool(user) and self.token_user(bearer) == user.split("@")[0]
        log.info("AUTH XOAUTH2 %s user=%s", "ok" if ok else "refused", user)
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    def _getparams(self, params):
        result = super()._getparams(params)
        if result is not None:
            result.pop("AUTH", None)
        return result


class SinkController(Controller):
    def factory(self):
        return TolerantSMTP(self.handler, **self.SMTP_kwargs)


class Recorder:
    """Shared by both listeners so messages.jsonl keeps one global order."""

    def __init__(self, spool):
        self.spool = spool
        self.jsonl = os.path.join(spool, "messages.jsonl")
        self.lock = threading.Lock()
        self.count = 0

    def handler(self, listener):
        recorder = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                refusal = recorder.refusal()
                if refusal:
                    return refusal
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                data = envelope.original_content or envelope.content
                if isinstance(data, str):
                    data = data.encode("utf-8", "surrogateescape")
                recorder.record(listener, server, session, envelope, data)
                return "250 2.0.0 OK stored"

        return Handler()

    def refusal(self):
        """The reply a test scripted in <spool>/refuse ("451 4.3.0 try again"), if any: every
        RCPT gets it, and it is logged to <spool>/refused.log, until the file is removed."""
        try:
            with open(os.path.join(self.spool, "refuse")) as f:
                reply = f.readline().strip()
        except FileNotFoundError:
            return None
        if reply:
            with self.lock, open(os.path.join(self.spool, "refused.log"), "a") as f:
                f.write(reply + "\n")
            log.info("refused RCPT: %s", reply)
        return reply or None

    def record(self, listener, server, session, envelope, data):
        with self.lock:
            self.count += 1
            path = os.path.join(self.spool, f"{self.count}.eml")
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.rename(path + ".tmp", path)
            transport = server.transport
            rec = {
                "listener": listener,
                "tls": transport is not None
                and transport.get_extra_info("ssl_object") is not None,
                "auth_user": session.auth_data if session.authenticated else None,
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "file": path,
            }
            with open(self.jsonl, "a") as f:
                f.write(json.dumps(rec) + "\n")
        log.info("stored %s from=%s to=%s", path, envelope.mail_from, envelope.rcpt_tos)


def introspection_server(port, tokens):
    class Introspect(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            token = (form.get("token") or [""])[0]
            user = tokens.get(token)
            log.info("introspect %s", "active for " + user if user else "refused")
            body = {"active": True, "username": user} if user else {"active": False}
            self.reply(200, body)

        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            log.debug(fmt, *args)

    server = ThreadingHTTPServer(("127.0.0.1", port), Introspect)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop_dovecot(pidfile):
    """Only the process group of the master this harness started (it is its leader), and
    only while that pid still is a dovecot master, never a recycled pid."""
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"dovecot" not in f.read():
                return
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--smtp-port", type=int, required=True)
    p.add_argument("--smtps-port", type=int, required=True)
    p.add_argument("--oauth-port", type=int, required=True)
    p.add_argument("--oauth-token", action="append", default=[], help="USER=TOKEN")
    p.add_argument("--introspection-url")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--users", required=True)
    p.add_argument("--spool", required=True)
    p.add_argument("--dovecot-pidfile")
    a = p.parse_args()

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")  # "Requiring AUTH while not requiring TLS" on smtps
    os.makedirs(a.spool, exist_ok=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    auth = Authenticator(load_users(a.users))
    recorder = Recorder(a.spool)
    tokens = {}
    for pair in a.oauth_token:
        user, token = pair.split("=", 1)
        tokens[token] = user
    TolerantSMTP.tokens = tokens
    TolerantSMTP.introspection_url = a.introspection_url

    common = dict(hostname="127.0.0.1", server_hostname="localhost",
                  authenticator=auth, ready_timeout=10.0)
    controllers = [
        SinkController(recorder.handler("smtp"), port=a.smtp_port, tls_context=ctx,
                       require_starttls=False, auth_required=False,
                       auth_require_tls=False, **common),
        SinkController(recorder.handler("smtps"), port=a.smtps_port, ssl_context=ctx,
                       auth_required=True, auth_require_tls=False, **common),
    ]
    for c in controllers:
        c.start()
    http = introspection_server(a.oauth_port, tokens)
    log.info("listening: smtp=%d smtps=%d oauth=%d", a.smtp_port, a.smtps_port, a.oauth_port)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_parent():
        sys.stdin.buffer.read()  # returns at EOF: the test process is gone
        if a.dovecot_pidfile:
            stop_dovecot(a.dovecot_pidfile)
        stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    stop.wait()
    http.shutdown()
    for c in controllers:
        c.stop()


if __name__ == "__main__":
    main()
