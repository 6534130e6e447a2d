#!/usr/bin/env python3
"""Ingest benchmark: tokenledger (release) vs DuckDB read_json -> Parquet on the same files.

Prints figures; asserts nothing. Peak RSS comes from wait4() of each child process.
"""
import argparse, json, os, shutil, subprocess, sys, time


def run(cmd, env=None):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.stdout.read(), p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        sys.exit(f"{cmd[0]} failed ({code}): {err.decode()[-2000:]}")
    return wall, ru.ru_maxrss / 1024.0, out


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rows-per-bucket", type=int, default=85)
    ap.add_argument("--months", type=int, default=1)
    ap.add_argument("--skip-duckdb", action="store_true")
    a = ap.parse_args()
    exports, data = os.path.join(a.work, "exports"), os.path.join(a.work, "data")
    shutil.rmtree(data, ignore_errors=True)
    if not os.path.isdir(os.path.join(exports, "usage")):
        print(f"generating {a.months} month(s) of 1-minute buckets ...", flush=True)
        subprocess.run([a.bin, "synth", "--out", exports, "--width", "1m", "--months", str(a.months),
                        "--rows-per-bucket", str(a.rows_per_bucket), "--workspaces", "8",
                        "--keys-per-workspace", "4", "--seed", "2026"], check=True)
    usage = os.path.join(exports, "usage")
    size = du(usage)
    print(f"input: {size / 1e9:.2f} GB of usage JSON in {len(os.listdir(usage))} page files", flush=True)

    wall, rss, out = run([a.bin, "--data-dir", data, "ingest", "--json", "-q", usage])
    summary = json.loads(out)
    rows = summary["by_format"]["anthropic-usage-api"]["rows_loaded"]
    lake = du(os.path.join(data, "usage"))
    print(f"tokenledger ingest: {rows:,} rows in {wall:.2f} s = {rows / wall:,.0f} rows/s, "
          f"{size / wall / 1e6:.0f} MB/s, peak RSS {rss:.0f} MiB, lake {lake / 1e6:.0f} MB", flush=True)

    wall2, rss2, _ = run([a.bin, "--data-dir", data, "ingest", "--json", "-q", usage])
    print(f"tokenledger re-ingest (all unchanged): {wall2:.2f} s, peak RSS {rss2:.0f} MiB", flush=True)

    if a.skip_duckdb:
        return
    out_pq = os.path.join(a.work, "duckdb.parquet")
    script = f"""
import duckdb
c = duckdb.connect()
c.execute('''COPY (
  SELECT b.starting_at, b.ending_at, unnest(b.results, recursive := true)
  FROM (SELECT unnest(data) AS b FROM read_json('{usage}/*.json', maximum_object_size=2000000000))
) TO '{out_pq}' (FORMAT parquet, COMPRESSION zstd)''')
print(c.execute("SELECT count(*) FROM read_parquet('{out_pq}')").fetchone()[0])
"""
    wall3, rss3, out3 = run([sys.executable, "-c", script])
    drows = int(out3.decode().strip())
    print(f"duckdb read_json -> parquet: {drows:,} rows in {wall3:.2f} s = {drows / wall3:,.0f} rows/s, "
          f"peak RSS {rss3:.0f} MiB", flush=True)
    print(f"ratio: tokenledger is {wall3 / wall:.1f}x DuckDB's throughput, "
          f"with {rss / rss3:.2f}x its peak memory", flush=True)


if __name__ == "__main__":
    main()
