"""An Azure Blob Storage server on loopback for the tests of a lake in an Azure container:
Azurite (Microsoft's emulator, from the npm registry: `azurite`), with one storage account whose
key the test chooses, and the test's container created in it.

    python3 az_server.py ACCOUNT KEY CONTAINER

Prints the port, then serves until its standard input closes (the test process that started
it exited, however it died) or 30 minutes pass, whichever comes first; Azurite is stopped with
it. Azurite is found on PATH (`azurite-blob`) or where `.ci/run` installs it
(`$HOME/.cache/tokenledger-npm/node_modules/.bin`).

Also, `python3 az_server.py --list PORT ACCOUNT KEY CONTAINER PREFIX` prints every blob name
under PREFIX as JSON (what a plain-Parquet reader of the container would find).

Azurite's accounts and its conditional put (`If-None-Match: *`, which a Delta commit needs) are
described in its README: https://github.com/Azure/Azurite#customized-storage-accounts--keys"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

from lifetime import announce_and_wait


def azurite():
    found = shutil.which("azurite-blob")
    if found:
        return found
    cached = os.path.expanduser("~/.cache/tokenledger-npm/node_modules/.bin/azurite-blob")
    if os.path.exists(cached):
        return cached
    sys.exit("azurite-blob not found: npm install --prefix ~/.cache/tokenledger-npm azurite@3.35.0")


def client(port, account, key):
    from azure.storage.blob import BlobServiceClient

    conn = (f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{account};")
    return BlobServiceClient.from_connection_string(conn)


def serve(account, key, container):
    location = tempfile.mkdtemp(prefix="tl-azurite-")
    env = dict(os.environ, AZURITE_ACCOUNTS=f"{account}:{key}")
    proc = subprocess.Popen(
        [azurite(), "--blobHost", "127.0.0.1", "--blobPort", "0", "--location", location,
         "--silent", "--disableTelemetry", "--skipApiVersionCheck"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    port = None
    for line in proc.stdout:
        m = re.search(r"listens on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        proc.kill()
        sys.exit("Azurite did not start")
    # Keep draining its output so it never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    try:
        client(port, account, key).create_container(container)
        announce_and_wait(port)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(location, ignore_errors=True)


def list_blobs(port, account, key, container, prefix):
    c = client(port, account, key).get_container_client(container)
    json.dump(sorted(b.name for b in c.list_blobs(name_starts_with=prefix)), sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "--list":
        list_blobs(int(sys.argv[2]), *sys.argv[3:7])
    else:
        serve(*sys.argv[1:4])
