#!/usr/bin/env python3
"""Ingest benchmark: tokenledger (release) vs DuckDB read_json -> Parquet on the same files.

Prints figures; asserts nothing. Peak RSS comes from wait4() of each child process.
"""
import argparse, json, os, shutil, subprocess, sys, time


PRICES_SQL = """CREATE TABLE p AS SELECT model, CAST(input AS DECIMAL(18,6)) i, CAST(cache_write_5m AS DECIMAL(18,6)) w5,
  CAST(cache_write_1h AS DECIMAL(18,6)) w1, CAST(cache_read AS DECIMAL(18,6)) r, CAST(output AS DECIMAL(18,6)) o,
  CAST(valid_from AS DATE) vf, CAST(valid_to AS DATE) vt
  FROM read_csv('@PRICES@', all_varchar=true) WHERE model NOT LIKE '(%'"""

# The same report in DuckDB: usage joined to prices by date, modifiers, DECIMAL sums per workspace × model.
REPORT_SQL = """
WITH u AS (
  SELECT workspace_id, workspace_name, regexp_replace(model, '-[0-9]{8}$', '') AS m, CAST(bucket_start AS DATE) AS d,
         service_tier, context_window, inference_geo,
         uncached_input_tokens t0, cache_write_5m_tokens t1, cache_write_1h_tokens t2, cache_read_tokens t3,
         output_tokens t4, web_search_requests ws
  FROM read_parquet('@USAGE@') WHERE strftime(bucket_start, '%Y-%m') = '@MONTH@'),
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
    ap.add_argument("--rows-per-bucket", type=int, default=90)
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

    # Rating + report of the month (rated_usage does not exist yet: rated from scratch).
    month = sorted(os.listdir(os.path.join(data, "usage", "provider=anthropic")))[0].split("=")[1]
    wall4, rss4, out4 = run([a.bin, "--data-dir", data, "report", "--month", month, "--format", "csv"])
    wall5, rss5, _ = run([a.bin, "--data-dir", data, "report", "--month", month, "--format", "csv"])
    print(f"tokenledger rate + report --month {month}: {wall4:.2f} s ({rows / wall4:,.0f} rows/s), peak RSS {rss4:.0f} MiB "
          f"({len(out4.splitlines()) - 1} lines); report alone (rated data current): {wall5:.2f} s, peak RSS {rss5:.0f} MiB", flush=True)

    if not a.skip_duckdb:
        # The same report in DuckDB, on the same lake (before the nightly step changes it).
        prices = os.path.join(a.work, "prices.csv")
        with open(prices, "wb") as f:
            f.write(subprocess.run([a.bin, "prices", "--all", "--format", "csv"], check=True, capture_output=True).stdout)
        sql = REPORT_SQL.replace("@PRICES@", prices).replace("@USAGE@", f"{data}/usage/**/*.parquet").replace("@MONTH@", month)
        script = "import duckdb\nc = duckdb.connect()\nc.execute(\"SET TimeZone='UTC'\")\nc.execute(\"SET enable_progress_bar=false\")\n" + \
            "c.execute(" + repr(PRICES_SQL.replace("@PRICES@", prices)) + ")\n" + \
            "print(len(c.execute(" + repr(sql) + ").fetchall()))\n"
        wall6, rss6, out6 = run([sys.executable, "-c", script])
        print(f"duckdb equivalent SQL (prices joined by date, DECIMAL): {wall6:.2f} s, peak RSS {rss6:.0f} MiB ({out6.decode().strip()} lines)", flush=True)
        print(f"ratio: tokenledger rate+report takes {wall4 / wall6:.2f}x DuckDB's time; report alone {wall5 / wall6:.2f}x", flush=True)

    # The nightly case: one more day arrives (a restated last day and the next one), is
    # ingested, and only the new parts are rated before the report.
    nightly = os.path.join(a.work, "nightly")
    if not os.path.isdir(nightly):
        subprocess.run([a.bin, "synth", "--out", nightly, "--width", "1m", "--start", month, "--months", "1",
                        "--rows-per-bucket", str(a.rows_per_bucket), "--workspaces", "8", "--keys-per-workspace", "4",
                        "--seed", "2027", "-q"], check=True)
    last_page = sorted(os.listdir(os.path.join(nightly, "usage")))[-1]
    w7, r7, _ = run([a.bin, "--data-dir", data, "ingest", "--json", "-q", os.path.join(nightly, "usage", last_page)])
    w8, r8, _ = run([a.bin, "--data-dir", data, "report", "--month", month, "--format", "csv"])
    print(f"nightly: ingest one restated day {w7:.2f} s (peak RSS {r7:.0f} MiB), then rate (new parts only) + report {w8:.2f} s (peak RSS {r8:.0f} MiB)", flush=True)

    if a.skip_duckdb:
        return
    # DuckDB read_json -> Parquet, tuned (no insertion order) and at its defaults.
    for label, tune in (("tuned: preserve_insertion_order=false", True), ("defaults", False)):
        out_pq = os.path.join(a.work, "duckdb.parquet")
        script = "import duckdb\nc = duckdb.connect()\nc.execute('SET enable_progress_bar=false')\n"
        if tune:
            script += "c.execute('SET preserve_insertion_order=false')\n"
        script += (
            "c.execute(" + repr(
                "COPY (SELECT b.starting_at, b.ending_at, unnest(b.results, recursive := true) "
                f"FROM (SELECT unnest(data) AS b FROM read_json('{usage}/*.json', maximum_object_size=67108864))) "
                f"TO '{out_pq}' (FORMAT parquet, COMPRESSION zstd)") + ")\n"
            f"print(c.execute(\"SELECT count(*) FROM read_parquet('{out_pq}')\").fetchone()[0])\n")
        wall3, rss3, out3 = run([sys.executable, "-c", script])
        drows = int(out3.decode().strip())
        print(f"duckdb read_json -> parquet ({label}): {drows:,} rows in {wall3:.2f} s = {drows / wall3:,.0f} rows/s, "
              f"peak RSS {rss3:.0f} MiB; tokenledger is {wall3 / wall:.1f}x its throughput with {rss / rss3:.2f}x its peak memory",
              flush=True)


if __name__ == "__main__":
    main()
