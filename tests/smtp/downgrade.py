"""An SMTP peer that never offers STARTTLS, for the downgrade tests; records every byte a client
sends it.

usage: downgrade.py PORT RECORD plain
       downgrade.py PORT RECORD strip UPSTREAM_PORT

plain: a server that offers AUTH but no STARTTLS and says yes to everything, so a client that
       fell back to plaintext would send its password and the message.
strip: a man in the middle in front of a real STARTTLS server (tests/smtp/server.py --tls):
       it forwards both ways but removes STARTTLS from the upstream's EHLO answer.

Every byte received from the client is appended to RECORD (flushed as it arrives). Prints
`ready` once it listens; exits after 120 s whatever happens (a test that hangs must not hang
the suite).
"""
import asyncio
import sys

port, record, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
upstream = int(sys.argv[4]) if mode == "strip" else None


def keep(data: bytes) -> None:
    with open(record, "ab") as f:
        f.write(data)


async def plain(reader, writer):
    writer.write(b"220 localhost ESMTP no TLS here\r\n")
    await writer.drain()
    in_data = False
    while line := await reader.readline():
        keep(line)
        cmd = line.strip().upper()
        if in_data:
            if cmd == b".":
                in_data = False
                writer.write(b"250 OK accepted\r\n")
        elif cmd.startswith(b"EHLO"):
            writer.write(b"250-localhost\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10485760\r\n")
        elif cmd.startswith(b"AUTH LOGIN"):
            writer.write(b"334 VXNlcm5hbWU6\r\n")
        elif cmd.startswith(b"AUTH"):
            writer.write(b"235 2.7.0 Authentication successful\r\n")
        elif cmd == b"DATA":
            in_data = True
            writer.write(b"354 go ahead\r\n")
        elif cmd == b"QUIT":
            writer.write(b"221 bye\r\n")
            await writer.drain()
            break
        elif cmd.startswith((b"MAIL", b"RCPT", b"RSET", b"NOOP", b"HELO")):
            writer.write(b"250 OK\r\n")
        else:
            # An AUTH LOGIN continuation (base64 user or password) lands here too.
            writer.write(b"334 UGFzc3dvcmQ6\r\n" if len(cmd) > 0 else b"500 ?\r\n")
        await writer.drain()
    writer.close()


async def strip(reader, writer):
    up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream)

    async def client_to_upstream():
        while data := await reader.read(65536):
            keep(data)
            up_w.write(data)
            await up_w.drain()
        up_w.close()

    async def upstream_to_client():
        # A reply is read whole (its lines are "250-…" until the last, "250 …"), STARTTLS
        # taken out, and the last line kept the last even when STARTTLS was it.
        reply = []
        while line := await up_r.readline():
            reply.append(line)
            if len(line) > 3 and line[3:4] == b"-":
                continue
            kept = [l for l in reply if b"STARTTLS" not in l.upper()]
            reply = []
            if kept:
                last = kept[-1]
                kept[-1] = last[:3] + b" " + last[4:]
                writer.write(b"".join(kept))
                await writer.drain()
        writer.close()

    await asyncio.gather(client_to_upstream(), upstream_to_client(), return_exceptions=True)


async def quietly(handler, reader, writer):
    # A client that hangs up mid-line (or talks TLS to a plain peer) ends its connection only.
    try:
        await handler(reader, writer)
    except (ConnectionError, asyncio.IncompleteReadError, OSError):
        writer.close()


async def main():
    handler = plain if mode == "plain" else strip
    server = await asyncio.start_server(
        lambda r, w: quietly(handler, r, w), "127.0.0.1", port
    )
    print("ready", flush=True)
    async with server:
        await asyncio.sleep(120)


asyncio.run(main())
