#!/usr/bin/env python3
"""The benchmark: tokenledger (release) and DuckDB on the same generated files, side by side.

Each step runs tokenledger and DuckDB alternately, ROUNDS times (default 3), on a fresh
state each round, and prints the min and median of each, the ratio of the medians and the
peak RSS. Steps:

  ingest        1-minute Admin API usage pages -> Parquet (tokenledger ingest; DuckDB
                read_json -> COPY TO parquet, tuned: preserve_insertion_order=false)
  cold report   the chargeback of a month never rated (tokenledger report after deleting
                usage_pricing: it prices usage on the fly; DuckDB prices the same usage in SQL,
                prices joined by date)
  warm report   the chargeback again (tokenledger only)
  rate          the month priced from scratch into usage_pricing, what the SQL readers (the
                rated_usage view, reconcile, credits, anomalies) read (tokenledger only)
  nightly       one restated day arrives: ingest it, then rate (new parts only) + report
  run           the whole nightly `tokenledger run` of a 3-month hourly organisation
                (cold: a new lake; then warm: nothing new)

Prints figures; asserts nothing. Peak RSS comes from wait4() of each child process.
usage: bench/bench.py --bin target/release/tokenledger [--rounds 3] [--work DIR]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

PRICES_SQL = """CREATE TABLE p AS SELECT model, CAST(input_usd_per_mtok AS DECIMAL(18,6)) i,
  CAST(cache_write_5m_usd_per_mtok AS DECIMAL(18,6)) w5, CAST(cache_write_1h_usd_per_mtok AS DECIMAL(18,6)) w1,
  CAST(cache_read_usd_per_mtok AS DECIMAL(18,6)) r, CAST(output_usd_per_mtok AS DECIMAL(18,6)) o,
  CAST(valid_from AS DATE) vf, CAST(valid_to AS DATE) vt
  FROM read_csv('@PRICES@', all_varchar=true) WHERE model NOT LIKE '(%'"""

# The same chargeback in DuckDB: usage joined to prices by date, modifiers, DECIMAL sums per
# workspace x model (what tokenledger's rate + report computes, without the Parquet it keeps).
REPORT_SQL = """
WITH u AS (
  SELECT workspace_id, workspace_name, regexp_replace(model, '-[0-9]{8}$', '') AS m, CAST(bucket_start AS DATE) AS d,
         service_tier, context_window, inference_geo,
         uncached_input_tokens t0, cache_write_5m_tokens t1, cache_write_1h_tokens t2, cache_read_tokens t3,
         output_tokens t4, web_search_requests ws
  FROM read_parquet('@USAGE@', hive_partitioning = true) WHERE month = '@MONTH@'),
j AS (
  SELECT u.*, p.i, p.w5, p.w1, p.r, p.o,
    (CASE WHEN service_tier = 'batch' THEN 0.5 ELSE 1 END)::DECIMAL(4,2) *
    (CASE WHEN inference_geo = 'us' AND m IN ('claude-opus-4-6','claude-sonnet-4-6') THEN 1.1 ELSE 1 END)::DECIMAL(4,2) AS f,
    (context_window = '200k-1M' AND m IN ('claude-sonnet-4','claude-sonnet-4-5')) AS lc
  FROM u JOIN p ON p.model = u.m AND (p.vf IS NULL OR p.vf <= u.d) AND (p.vt IS NULL OR u.d < p.vt))
SELECT workspace_id, workspace_name, m, SUM(t0), SUM(t1), SUM(t2), SUM(t3), SUM(t4), SUM(ws),
  SUM(CASE WHEN lc THEN (t0*6.0 + t1*7.5 + t2*12.0 + t3*0.6 + t4*22.5)::DECIMAL(38,6)
           ELSE (t0*i + t1*w5 + t2*w1 + t3*r + t4*o)::DECIMAL(38,6) END * f + ws * 10000.0)
FROM j GROUP BY ALL
"""


def run(cmd, env=None):
    """(wall seconds, peak RSS MiB from wait4, stdout) of one child process."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as errf:
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=errf)
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        if p.returncode not in (0, 3, 4):  # 3: findings, 4: findings that stand from before
            errf.seek(0)
            sys.exit(f"{cmd[0]} failed ({p.returncode}): {errf.read().decode()[-2000:]}")
    return wall, ru.ru_maxrss / 1024.0, out


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


class Step:
    def __init__(self, name):
        self.name, self.times = name, {}

    def add(self, who, wall, rss):
        self.times.setdefault(who, []).append((wall, rss))

    def line(self, who):
        v = self.times.get(who)
        if not v:
            return None
        walls = [w for w, _ in v]
        return statistics.median(walls), min(walls), max(r for _, r in v)

    def report(self):
        parts = []
        for who in ("tokenledger", "duckdb"):
            s = self.line(who)
            if s:
                parts.append(f"{who} median {s[0]:.2f} s (min {s[1]:.2f}), peak RSS {s[2]:.0f} MiB")
        ratio = ""
        t, d = self.line("tokenledger"), self.line("duckdb")
        if t and d:
            ratio = f"; tokenledger takes {t[0] / d[0]:.2f}x DuckDB's time ({d[0] / t[0]:.1f}x faster)"
        n = max(len(v) for v in self.times.values())
        print(f"{self.name} ({n} rounds): " + "; ".join(parts) + ratio, flush=True)


def duckdb_ingest(usage, out_pq):
    script = ("import duckdb\nc = duckdb.connect()\nc.execute('SET enable_progress_bar=false')\n"
              "c.execute('SET preserve_insertion_order=false')\n"
              "c.execute(" + repr(
                  "COPY (SELECT b.starting_at, b.ending_at, unnest(b.results, recursive := true) "
                  f"FROM (SELECT unnest(data) AS b FROM read_json('{usage}/*.json', maximum_object_size=67108864))) "
                  f"TO '{out_pq}' (FORMAT parquet, COMPRESSION zstd)") + ")\n")
    return run([sys.executable, "-c", script])


def duckdb_report(data, prices, month):
    sql = REPORT_SQL.replace("@USAGE@", f"{data}/usage/**/*.parquet").replace("@MONTH@", month)
    script = ("import duckdb\nc = duckdb.connect()\nc.execute(\"SET TimeZone='UTC'\")\n"
              "c.execute(\"SET enable_progress_bar=false\")\n"
              "c.execute(" + repr(PRICES_SQL.replace("@PRICES@", prices)) + ")\n"
              "print(len(c.execute(" + repr(sql) + ").fetchall()))\n")
    return run([sys.executable, "-c", script])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", default="/tmp/tokenledger-bench")
    ap.add_argument("--rows-per-bucket", type=int, default=90)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-run", action="store_true", help="skip the 3-month hourly nightly run")
    ap.add_argument("--only-run", action="store_true", help="only the 3-month hourly nightly run")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    exports = os.path.join(a.work, "exports")
    if not os.path.isdir(os.path.join(exports, "usage")):
        print("generating a month of 1-minute buckets ...", flush=True)
        subprocess.run([a.bin, "synth", "--out", exports, "--width", "1m", "--months", "1",
                        "--rows-per-bucket", str(a.rows_per_bucket), "--workspaces", "8",
                        "--keys-per-workspace", "4", "--seed", "2026", "-q"], check=True)
    usage = os.path.join(exports, "usage")
    size = du(usage)
    print(f"input: {size / 1e9:.2f} GB of usage JSON in {len(os.listdir(usage))} page files; "
          f"{a.rounds} rounds, tokenledger and DuckDB alternately", flush=True)
    data = os.path.join(a.work, "data")
    prices = os.path.join(a.work, "prices.csv")
    with open(prices, "wb") as f:
        f.write(subprocess.run([a.bin, "prices", "--all", "--format", "csv", "--wide"],
                               check=True, capture_output=True).stdout)
    nightly = os.path.join(a.work, "nightly")
    if not os.path.isdir(nightly):
        subprocess.run([a.bin, "synth", "--out", nightly, "--width", "1m", "--start", "2026-10", "--months", "1",
                        "--rows-per-bucket", str(a.rows_per_bucket), "--workspaces", "8", "--keys-per-workspace", "4",
                        "--seed", "2027", "-q"], check=True)
    last_page = os.path.join(nightly, "usage", sorted(os.listdir(os.path.join(nightly, "usage")))[-1])

    if a.only_run:
        return nightly_runs(a)
    ingest, cold, warm, night = Step("ingest"), Step("cold report (month never rated)"), Step("warm report"), Step("nightly")
    rate = Step("rate (usage_pricing from scratch)")
    rows = 0
    for r in range(a.rounds):
        shutil.rmtree(data, ignore_errors=True)
        wall, rss, out = run([a.bin, "--data-dir", data, "ingest", "--json", "-q", usage])
        rows = json.loads(out)["by_format"]["anthropic-usage-api"]["rows_loaded"]
        ingest.add("tokenledger", wall, rss)
        out_pq = os.path.join(a.work, "duckdb.parquet")
        wall, rss, _ = duckdb_ingest(usage, out_pq)
        ingest.add("duckdb", wall, rss)
        os.remove(out_pq)

        month = sorted(os.listdir(os.path.join(data, "usage", "provider=anthropic")))[0].split("=")[1]
        shutil.rmtree(os.path.join(data, "usage_pricing"), ignore_errors=True)
        wall, rss, _ = run([a.bin, "--data-dir", data, "report", "--month", month, "--format", "csv"])
        cold.add("tokenledger", wall, rss)
        wall, rss, _ = duckdb_report(data, prices, month)
        cold.add("duckdb", wall, rss)
        wall, rss, _ = run([a.bin, "--data-dir", data, "report", "--month", month, "--format", "csv"])
        warm.add("tokenledger", wall, rss)
        shutil.rmtree(os.path.join(data, "usage_pricing"), ignore_errors=True)
        wall, rss, _ = run([a.bin, "--data-dir", data, "rate", "-q"])
        rate.add("tokenledger", wall, rss)

        w1, r1, _ = run([a.bin, "--data-dir", data, "ingest", "--json", "-q", last_page])
        w2, r2, _ = run([a.bin, "--data-dir", data, "report", "--month", month, "--format", "csv"])
        night.add("tokenledger", w1 + w2, max(r1, r2))
    print(f"rows: {rows:,} usage rows ({size / 1e6:.0f} MB of JSON)", flush=True)
    for s in (ingest, cold, warm, rate, night):
        s.report()
    t = ingest.line("tokenledger")
    print(f"ingest throughput: {rows / t[0]:,.0f} rows/s, {size / t[0] / 1e6:.0f} MB/s (median)", flush=True)

    if not a.skip_run:
        nightly_runs(a)


def nightly_runs(a):
    """The whole nightly `run` of a 3-month hourly organisation (500 keys, about 0.5 M usage
    rows, with its cost report): a new lake, then the next night with nothing new."""
    org = os.path.join(a.work, "org-3m-1h")
    if not os.path.isdir(org):
        subprocess.run([a.bin, "synth", "--out", org, "--width", "1h", "--start", "2026-08", "--months", "3",
                        "--workspaces", "10", "--keys-per-workspace", "50", "--rows-per-bucket", "500",
                        "--seed", "7", "-q"], check=True)
    nightly_run = Step("nightly run, 3-month hourly organisation")
    again = Step("nightly run again, nothing new")
    for r in range(a.rounds):
        lake = os.path.join(a.work, "run-data")
        shutil.rmtree(lake, ignore_errors=True)
        wall, rss, _ = run([a.bin, "--data-dir", lake, "-q", "run", "--as-of", "2026-11-04", "--inputs", org])
        nightly_run.add("tokenledger", wall, rss)
        wall, rss, _ = run([a.bin, "--data-dir", lake, "-q", "run", "--as-of", "2026-11-04", "--inputs", org])
        again.add("tokenledger", wall, rss)
    n = subprocess.run([a.bin, "--data-dir", lake, "sql", "SELECT COUNT(*) AS n FROM usage", "--format", "json"],
                       check=True, capture_output=True).stdout
    print(f"organisation: {json.loads(n)[0]['n']:,} usage rows, 3 months of 1h buckets", flush=True)
    nightly_run.report()
    again.report()


if __name__ == "__main__":
    main()
