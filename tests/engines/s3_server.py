"""An S3-compatible server on loopback for the tests of a lake on object storage: moto's
server mode (PyPI `moto[server]`), which honours `If-None-Match: *` (the put-if-absent a Delta
commit needs; checked by tests/it/remote.rs, which sees a second writer's commit refused).

    python3 s3_server.py BUCKET [BUCKET...]

Prints the port, then serves until its standard input closes (the test process that started
it exited, however it died) or 30 minutes pass, whichever comes first.

Also, `python3 s3_server.py --list PORT BUCKET PREFIX` prints every key under PREFIX as JSON
(what a plain-Parquet reader of the bucket would find)."""

import json
import logging
import sys

from lifetime import announce_and_wait


def serve(buckets):
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    s3 = client(port)
    for b in buckets:
        s3.create_bucket(Bucket=b)
    announce_and_wait(port)
    server.stop()


def client(port):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


def list_keys(port, bucket, prefix):
    s3 = client(port)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    json.dump(sorted(keys), sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "--list":
        list_keys(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        serve(sys.argv[1:])
