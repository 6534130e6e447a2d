#!/usr/bin/env python3
"""Scale: a year of dense 1-minute usage, month by month, and every command's time and peak
memory at 1, 3, 6 and 12 months, so growth shows as a curve (a program that prints figures;
not a test, asserts nothing).

Each month is generated (`tokenledger synth --width 1m --rows-per-bucket N`), ingested (its
rows/s recorded), and its JSON deleted (a year is ~23 GB of JSON). At each step every command
runs once on the lake: rate (what is stale), report, usage, credits, anomalies, reconcile, a
GROUP BY in sql, and `run` with nothing new. Peak RSS comes from wait4() of each child.
Writes WORK/scale.csv and, when matplotlib is importable, WORK/scale.png.

usage: bench/scale.py --bin target/release/tokenledger [--work DIR] [--steps 1,3,6,12]
       [--rows-per-bucket 900]
       bench/scale.py --plot-only WORK/scale.csv OUT.png   # the plot again from a CSV
"""
import argparse, csv, os, shutil, subprocess, sys, tempfile, time


def run(cmd):
    """(wall seconds, peak RSS MiB, exit code, stdout) of one child process."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 3, 4):
            sys.stderr.write(err.read().decode(errors="replace")[-2000:])
        return wall, ru.ru_maxrss / 1024, code, out.read().decode(errors="replace")


FIRST = None  # set in main: the first month, so the last step ends before today


def month_of(i):
    y, m = divmod(FIRST + i, 12)
    return f"{y}-{m + 1:02d}"


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", default="/tmp/tokenledger-scale")
    ap.add_argument("--steps", default="1,3,6,12")
    ap.add_argument("--rows-per-bucket", default="900")
    a = ap.parse_args()
    steps = sorted(int(s) for s in a.steps.split(","))
    global FIRST
    today = time.gmtime()
    # Whole months before this one: a bucket after today is implausible (quarantined).
    FIRST = today.tm_year * 12 + today.tm_mon - 1 - steps[-1]
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    lake, empty = os.path.join(a.work, "lake"), os.path.join(a.work, "empty")
    os.makedirs(empty)
    tl = [a.bin, "-q", "--data-dir", lake]
    rows, results = 0, []
    print(f"{'months':>6} {'rows':>11} {'lake':>9}  {'command':<10} {'seconds':>8} {'peak MiB':>9}  note")
    for i in range(steps[-1]):
        month = month_of(i)
        js = os.path.join(a.work, f"json-{month}")
        run([a.bin, "-q", "synth", "--out", js, "--start", month, "--months", "1", "--width", "1m",
             "--rows-per-bucket", a.rows_per_bucket, "--seed", str(42 + i)])
        json_bytes = du(js)
        wall, mib, code, out = run(tl[:1] + ["--data-dir", lake, "ingest", js, "--json", "-q"])
        import json as _j
        summary = _j.loads(out)
        loaded = sum(f["rows_loaded"] for f in summary["files"])
        rows += loaded
        shutil.rmtree(js)
        results.append(dict(months=i + 1, rows=rows, lake_bytes=du(lake), command="ingest",
                            seconds=wall, peak_mib=mib,
                            note=f"{loaded / wall / 1000:.0f}k rows/s, {json_bytes / 2**30:.2f} GiB JSON"))
        print(f"{i + 1:>6} {rows:>11,} {du(lake) / 2**30:>7.2f}Gi  {'ingest':<10} {wall:>8.2f} {mib:>9.0f}  "
              f"{results[-1]['note']}", flush=True)
        if i + 1 not in steps:
            continue
        as_of = f"{month_of(i + 1)}-05"
        for name, args in [
            ("rate new months", ["rate"]),
            ("report", ["report", "--month", month]),
            ("usage", ["usage", "--month", month]),
            ("credits", ["credits", "--as-of", as_of]),
            ("anomalies", ["anomalies"]),
            ("reconcile", ["reconcile", "--month", month]),
            ("sql", ["sql", "SELECT model_canonical, SUM(list_cost) AS c FROM rated_usage GROUP BY 1"]),
            ("run", ["run", "--inputs", empty, "--as-of", as_of]),
            ("run again", ["run", "--inputs", empty, "--as-of", as_of]),
        ]:
            wall, mib, code, _ = run(tl + args)
            results.append(dict(months=i + 1, rows=rows, lake_bytes=du(lake), command=name,
                                seconds=wall, peak_mib=mib, note=f"exit {code}"))
            print(f"{i + 1:>6} {rows:>11,} {du(lake) / 2**30:>7.2f}Gi  {name:<10} {wall:>8.2f} {mib:>9.0f}  exit {code}",
                  flush=True)
    with open(os.path.join(a.work, "scale.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(results[0]))
        w.writeheader()
        w.writerows(results)
    plot(results, steps, os.path.join(a.work, "scale.png"))


def plot(results, steps, out):
    """Memory and time per command against the rows in the lake (needs matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(pip install matplotlib for scale.png)")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    for name in dict.fromkeys(r["command"] for r in results):
        pts = [(float(r["rows"]) / 1e6, float(r["peak_mib"]), float(r["seconds"])) for r in results
               if r["command"] == name and (name != "ingest" or int(r["months"]) in steps)]
        ax1.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax2.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=name)
    ax1.axhline(512, color="red", linestyle="--", linewidth=1)
    ax1.set(xlabel="usage rows in the lake (millions)", ylabel="peak RSS (MiB)", title="memory per command")
    ax2.set(xlabel="usage rows in the lake (millions)", ylabel="seconds",
            title="time per command (ingest: that month alone)")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--plot-only":  # --plot-only CSV PNG
        rows = list(csv.DictReader(open(sys.argv[2])))
        for r in rows:
            r["command"] = "rate new months" if r["command"] == "rate" else r["command"]
        plot(rows, sorted({int(r["months"]) for r in rows if r["command"] != "ingest"}), sys.argv[3])
        sys.exit(0)
    main()
