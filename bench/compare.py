#!/usr/bin/env python3
"""Two builds of tokenledger on the same files, interleaved (a program that prints figures;
not a test): before, after, after, before, … so a noisy machine's drift falls on both.

    bench/compare.py --before OLD/tokenledger --after NEW/tokenledger [--rounds 9]

Steps per round and binary, each on its own lake: ingest a month of 1-minute usage pages
(bench/bench.py's files, generated if absent), the chargeback of a month never rated, the
same again, `rate` from scratch. Prints per step the median and min time and the median peak
RSS (wait4), and for the cold chargeback the anonymous and file-backed parts of the resident
set at its sampled peak (/proc/PID/smaps_rollup every 2 ms): file-backed pages are the
binary's, mapped from the page cache, and vary with how the file got there, so where we may
(root) the page cache is dropped first and each binary read in by exec."""
import argparse, os, shutil, statistics, subprocess, time

STEPS = ("ingest", "cold report", "warm report", "rate")


def rollup(pid):
    d = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                p = line.split()
                if len(p) >= 3 and p[2] == "kB":
                    d[p[0].rstrip(":")] = int(p[1])
    except OSError:
        pass
    return d


def run(cmd, sample=False):
    """(wall s, peak RSS MiB, anon MiB and file MiB at the sampled peak or None)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    best = {}
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG if sample else 0)
        if pid:
            break
        d = rollup(p.pid)
        if d.get("Rss", 0) > best.get("Rss", 0):
            best = d
        time.sleep(0.002)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed")
    split = (best.get("Anonymous", 0) / 1024, (best.get("Rss", 0) - best.get("Anonymous", 0)) / 1024) if best else None
    return wall, ru.ru_maxrss / 1024, split


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--work", default="/tmp/tokenledger-bench-delta")
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args()
    usage = os.path.join(a.work, "exports", "usage")
    if not os.path.isdir(usage):
        subprocess.run([a.after, "synth", "--out", os.path.join(a.work, "exports"), "--width", "1m",
                        "--months", "1", "--rows-per-bucket", "90", "--workspaces", "8",
                        "--keys-per-workspace", "4", "--seed", "2026", "-q"], check=True)
    subprocess.run(["sync"])
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
        print("(page cache dropped; each binary read in by exec)")
    except OSError:
        print("(page cache not dropped: not root; file-backed RSS as found)")
    builds = [("before", a.before), ("after", a.after)]
    for _, b in builds:
        subprocess.run([b, "--version"], check=True, stdout=subprocess.DEVNULL)
    res = {(w, s): [] for w, _ in builds for s in STEPS}
    split = {w: [] for w, _ in builds}
    for r in range(a.rounds):
        for who, b in builds if r % 2 == 0 else builds[::-1]:
            data = os.path.join(a.work, f"compare-{who}")
            shutil.rmtree(data, ignore_errors=True)
            res[(who, "ingest")].append(run([b, "--data-dir", data, "ingest", "-q", usage])[:2])
            month = sorted(os.listdir(os.path.join(data, "usage", "provider=anthropic")))[0].split("=")[1]
            report = [b, "--data-dir", data, "report", "--month", month, "--format", "csv"]
            wall, rss, sp = run(report, sample=True)
            res[(who, "cold report")].append((wall, rss))
            split[who].append(sp)
            res[(who, "warm report")].append(run(report)[:2])
            shutil.rmtree(os.path.join(data, "usage_pricing"), ignore_errors=True)
            res[(who, "rate")].append(run([b, "--data-dir", data, "rate", "-q"])[:2])
    print(f"{a.rounds} rounds, interleaved; before = {a.before}, after = {a.after}")
    for s in STEPS:
        cells = []
        for who, _ in builds:
            v = res[(who, s)]
            cells.append(f"{who} {statistics.median(x[0] for x in v):.3f} s (min {min(x[0] for x in v):.3f}), "
                         f"{statistics.median(x[1] for x in v):.1f} MiB")
        print(f"{s}: " + " | ".join(cells))
    for who, _ in builds:
        v = [x for x in split[who] if x]
        if v:
            print(f"cold report, {who}: at the sampled peak {statistics.median(x[0] for x in v):.1f} MiB "
                  f"anonymous, {statistics.median(x[1] for x in v):.1f} MiB file-backed")


if __name__ == "__main__":
    main()
