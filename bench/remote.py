#!/usr/bin/env python3
"""A lake in a bucket against the same lake on disk (a program that prints figures; not a test).

Starts moto's S3 server on loopback (tests/engines/s3_server.py: Python, so every request costs
more than on S3 itself; the figures show tokenledger's own overhead and the number of
requests, not S3's latency), generates hourly usage with `tokenledger synth`, then, ROUNDS
times each (fresh lakes per round), times and takes the peak RSS of:

  ingest        the exports into a lake on disk / into s3://bench/lake-N
  report        the chargeback of the last full month: on disk / from the working copy that
                ingested (nothing new in the bucket: one HEAD per table) / from an empty
                working copy (a new machine: every file downloaded)
  noop          `sql "SELECT 1"` on an unchanged lake: the cost of the refresh itself

usage: bench/remote.py --bin target/release/tokenledger [--rounds 3] [--rows-per-bucket 20]
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        sys.exit(f"{' '.join(cmd)}: exit {code}\n{err.decode()}")
    return time.monotonic() - t0, ru.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows-per-bucket", type=int, default=20)
    ap.add_argument("--work", default=tempfile.mkdtemp(prefix="tokenledger-bench-remote-"))
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    server = subprocess.Popen(
        ["timeout", "3600", "python3", os.path.join(HERE, "../tests/engines/s3_server.py"), "bench"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    port = int(server.stdout.readline())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TOKENLEDGER_"))}
    env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
               AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1", AWS_ALLOW_HTTP="true")
    exports = os.path.join(a.work, "exports")
    if not os.path.isdir(exports):
        subprocess.run([a.bin, "synth", "--out", exports, "-q", "--width", "1h", "--months", "3",
                        "--rows-per-bucket", str(a.rows_per_bucket), "--seed", "7"],
                       env=env, check=True)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(exports) for f in fs)
    figures = {}

    def add(name, r):
        figures.setdefault(name, []).append(r)

    month = None
    for i in range(a.rounds):
        disk = os.path.join(a.work, f"disk-{i}")
        cache_a, cache_b = os.path.join(a.work, f"a-{i}"), os.path.join(a.work, f"b-{i}")
        for d in (disk, cache_a, cache_b):
            shutil.rmtree(d, ignore_errors=True)
        url = f"s3://bench/lake-{i}-{time.time_ns()}"
        on_disk = [a.bin, "-q", "--data-dir", disk]
        bucket = lambda cache: ([a.bin, "-q", "--data-dir", url], dict(env, TOKENLEDGER_LAKE_CACHE=cache))
        add("ingest: disk", run(on_disk + ["ingest", exports], env))
        cmd, e = bucket(cache_a)
        add("ingest: bucket", run(cmd + ["ingest", exports], e))
        if month is None:
            out = subprocess.run(on_disk + ["sql", "SELECT MAX(month) AS m FROM usage", "--format", "csv"],
                                 env=env, capture_output=True, text=True, check=True).stdout
            last = out.split()[-1]
            y, m = map(int, last.split("-"))
            month = f"{y - (m == 1)}-{12 if m == 1 else m - 1:02d}"
        report = ["report", "--month", month, "--format", "csv"]
        add("report: disk", run(on_disk + report, env))
        add("report: bucket, same machine", run(cmd + report, e))
        cmd_b, e_b = bucket(cache_b)
        add("report: bucket, new machine", run(cmd_b + report, e_b))
        add("noop: disk", run(on_disk + ["sql", "SELECT 1 AS x"], env))
        add("noop: bucket", run(cmd + ["sql", "SELECT 1 AS x"], e))
    server.stdin.close()
    server.wait(timeout=60)
    print(f"{size / 2**20:.0f} MiB of exports, {a.rounds} rounds, moto on loopback; median (min) s, peak RSS MiB")
    for name, rs in figures.items():
        ts = [t for t, _ in rs]
        print(f"  {name:32} {statistics.median(ts):7.2f} ({min(ts):.2f}) s  {max(m for _, m in rs):6.0f} MiB")


if __name__ == "__main__":
    main()
