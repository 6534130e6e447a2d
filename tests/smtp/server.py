"""A real SMTP server on loopback for the mail tests (aiosmtpd, from PyPI).

usage: server.py PORT DIR [--user U --password P] [--fail N] [--tls CERT KEY]
                 [--implicit-tls CERT KEY]

Saves every accepted message as DIR/<n>.eml with a DIR/<n>.rcpt file of its recipients.
With --user/--password, AUTH (PLAIN or LOGIN) is required. With --fail N, the first N DATA
commands are answered `451 4.3.0` (a temporary failure, as a busy relay does). Prints
`ready` on stdout once it listens; runs until killed. With --tls, STARTTLS is required before
anything else (the certificate is a test CA's leaf for `localhost`). With --implicit-tls, the
connection is TLS from its first byte (SMTPS, port 465's way).
"""
import argparse
import os
import sys
import time
import warnings

warnings.simplefilter("ignore")  # AUTH without TLS is what the loopback test means to do
import logging

logging.disable(logging.CRITICAL)

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("dir")
ap.add_argument("--user")
ap.add_argument("--password")
ap.add_argument("--fail", type=int, default=0)
ap.add_argument("--tls", nargs=2)
ap.add_argument("--implicit-tls", nargs=2)
args = ap.parse_args()
os.makedirs(args.dir, exist_ok=True)


class Handler:
    def __init__(self):
        self.fail = args.fail
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        if self.fail > 0:
            self.fail -= 1
            return "451 4.3.0 try again later"
        self.n += 1
        base = os.path.join(args.dir, f"{self.n:04}")
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".rcpt", "w") as f:
            f.write("\n".join(envelope.rcpt_tos))
        os.rename(base + ".tmp", base + ".eml")
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == args.user
        and auth_data.password.decode() == args.password
    )
    return AuthResult(success=ok)


kw = {}
if args.user:
    kw = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False)
if args.tls:
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*args.tls)
    kw.update(tls_context=ctx, require_starttls=True)
if args.implicit_tls:
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*args.implicit_tls)
    kw.update(ssl_context=ctx, server_hostname="localhost")
c = Controller(Handler(), hostname="127.0.0.1", port=args.port, **kw)
c.start()
print("ready", flush=True)
try:
    while True:
        time.sleep(3600)
finally:
    c.stop()
