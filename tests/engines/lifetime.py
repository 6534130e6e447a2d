"""How a loopback server started by a test lives: it prints its port (the test reads that line),
then serves until its standard input closes — the test process that started it exited, however
it died — or `timeout` seconds pass. Used by s3_server.py and az_server.py."""

import sys
import threading


def announce_and_wait(port, timeout=1800):
    print(port, flush=True)
    done = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    done.wait(timeout=timeout)
