#!/usr/bin/env python3
"""Groups `perf report --stdio` symbol lines (stdin) into the ingest's stages; prints shares."""
import re
import sys

STAGES = [
    ("JSON parse (serde_json, lenient values, row conversion)",
     ["serde_json", "serde_core", "Scalar", "Obj<", "usage_from_map", "KeepSeed", "lenient::object", "UsageField", "usage_row",
      "CacheCreation", "ServerToolUse", "Results<", "opt_text", "usage_tokens", "check_enum",
      "DataSeed", "PageSeed", "parse_ts", "from_utf8", "opt_enum"]),
    ("bucket checks (repeated dimensions, times)",
     ["hash_slice", "repeated", "foldhash", "bucket_times", "BucketHandler", "UsageHandler",
      "chrono", "HashMap<K,V,S,A>::insert", "dimensions"]),
    ("staging rows (sink, Arrow builders)",
     ["WorkerSink", "push_named", "generic_bytes_builder", "primitive_builder", "UsageBuilder",
      "note_interval", "resolve_usage", "boolean_builder"]),
    ("Parquet writer (dictionary interning, encoding, zstd)",
     ["parquet::", "ZSTD", "Interner", "ahash", "arrow_writer", "HUF_", "FSE_", "HIST_"]),
    ("reading and hashing the input (kernel copy, page cache, blake3)",
     ["blake3", "_copy_to_iter", "filemap", "read_to_end"]),
    ("memory (memmove, memcmp, malloc, page faults)",
     ["malloc", "free", "memmove", "memcpy", "memset", "realloc", "page_fault", "clear_page",
      "memcmp", "unlink_chunk", "mm_fault"]),
]

share = {name: 0.0 for name, _ in STAGES}
other = []
for line in sys.stdin:
    m = re.match(r"\s+([\d.]+)%\s+\S+\s+\S+\s+\[.\]\s+(.*)", line)
    if not m:
        continue
    pct, sym = float(m.group(1)), m.group(2)
    for name, keys in STAGES:
        if any(k in sym for k in keys):
            share[name] += pct
            break
    else:
        other.append((pct, sym[:90]))
for name, _ in STAGES:
    print(f"{share[name]:5.1f}%  {name}")
print(f"{sum(p for p, _ in other):5.1f}%  other; the largest:")
for pct, sym in sorted(other, reverse=True)[:5]:
    print(f"         {pct:4.1f}%  {sym}")
