"""Reads every table of a tokenledger lake as a Delta table with the `deltalake` package
(delta-rs, from PyPI) and prints, as JSON, what a Delta reader sees of each: its version, its
data files, its row count, the sum of every money (decimal) column to the last digit, and the
sum of every token column.

    python3 delta_check.py DATA_DIR
    python3 delta_check.py s3://BUCKET/PREFIX   (a lake on object storage: the endpoint and
                                                 credentials from AWS_* in the environment)
    python3 delta_check.py az://CONTAINER/PREFIX (from AZURE_STORAGE_* and, for Azurite,
                                                 AZURITE_BLOB_STORAGE_URL)

Tables without a `_delta_log` are left out. Used by tests/it/delta.rs and tests/it/remote.rs.
In a bucket, the plain-Parquet sums are not read (DuckDB's httpfs extension downloads at
INSTALL); tests/it/remote.rs compares with a local lake instead."""

import json
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable


TABLES = [
    "usage", "usage_coverage", "cost", "cost_coverage", "workspaces", "api_keys",
    "ingest_log", "quarantine", "usage_pricing", "credit_lots", "balance_snapshots",
    "invoices", "invoice_lines", "anomaly_acks", "mail_log", "alert_log", "teams", "pull_log",
]


def storage_options():
    """The store's settings as delta-rs takes them (object_store's config keys, lower case;
    AZURITE_BLOB_STORAGE_URL is read from the environment by object_store itself)."""
    keys = ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
            "AWS_ALLOW_HTTP", "AZURE_STORAGE_USE_EMULATOR", "AZURE_STORAGE_ACCOUNT_NAME",
            "AZURE_STORAGE_ACCOUNT_KEY"]
    return {k.lower(): os.environ[k] for k in keys if k in os.environ}


def table_state(path):
    remote = "://" in path
    dt = DeltaTable(path, storage_options=storage_options()) if remote else DeltaTable(path)
    root = path.rstrip("/") + "/" if remote else os.path.abspath(path)
    files = sorted(
        u[len(root):] if remote else
        os.path.relpath(u[len("file://"):] if u.startswith("file://") else u, root)
        for u in dt.file_uris()
    )
    t = dt.to_pyarrow_table()
    sums = {}
    for f in t.schema:
        if pa.types.is_decimal(f.type) or (pa.types.is_integer(f.type) and f.name.endswith("_tokens")):
            s = pc.sum(t[f.name]).as_py()
            sums[f.name] = None if s is None else format(s, "f") if not isinstance(s, int) else str(s)
    partitions = sorted({c for c in dt.metadata().partition_columns})
    return {
        "version": dt.version(),
        "files": files,
        "rows": t.num_rows,
        "sums": sums,
        "partition_columns": partitions,
        "columns": [f.name for f in t.schema],
    }


def plain_state(path, columns):
    """The same sums from the table's folders read as plain Parquet by DuckDB (the globs the
    README gives: the partition depth, never `_delta_log/`)."""
    import glob

    import duckdb

    if glob.glob(f"{path}/provider=*/month=*"):
        g = f"{path}/provider=*/month=*/*.parquet"
    elif glob.glob(f"{path}/provider=*"):
        g = f"{path}/provider=*/*.parquet"
    else:
        g = f"{path}/*.parquet"
    if not glob.glob(g):
        return {"rows": 0, "sums": {c: None for c in columns}}
    c = duckdb.connect()
    rel = f"read_parquet('{g}', hive_partitioning = true, hive_types_autocast = false)"
    n = c.execute(f"SELECT COUNT(*) FROM {rel}").fetchone()[0]
    sums = {}
    for col in columns:
        v = c.execute(f'SELECT SUM("{col}") FROM {rel}').fetchone()[0]
        sums[col] = None if v is None else str(v) if isinstance(v, int) else format(v, "f")
    return {"rows": n, "sums": sums}


def main():
    data = sys.argv[1]
    out = {}
    if "://" in data:
        from deltalake.exceptions import TableNotFoundError

        for name in TABLES:
            try:
                out[name] = table_state(f"{data.rstrip('/')}/{name}")
            except TableNotFoundError:
                pass
        json.dump(out, sys.stdout, indent=1, sort_keys=True)
        return
    for name in sorted(os.listdir(data)):
        d = os.path.join(data, name)
        if os.path.isdir(os.path.join(d, "_delta_log")):
            out[name] = table_state(d)
            out[name]["plain"] = plain_state(d, list(out[name]["sums"]))
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
