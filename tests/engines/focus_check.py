"""Checks a tokenledger FOCUS export against the FOCUS 1.4 column model and sums it with DuckDB.

    python3 focus_check.py DIR parquet|csv

The column model is the one the PyPI package `focus-data-toolkit` ships
(focus_data_toolkit/model/focus_1_4_model.json, an extraction of the FinOps Foundation's 1.4
data-model workbook, CC-BY-4.0): for each dataset, every column's feature level, data type,
nullability and allowed values. Nothing about FOCUS is typed here.

Prints one JSON object: the violations found (empty when the export conforms), each dataset's
columns and row count, and exact totals (decimal text) DuckDB computes from the files.
"""

import importlib.util
import json
import os
import re
import sys

import duckdb

DATASETS = {
    "cost_and_usage": "Cost and Usage",
    "invoice_detail": "Invoice Detail",
    "billing_period": "Billing Period",
}
DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$")
CURRENCY = re.compile(r"^[A-Z]{3}$")


def model():
    spec = importlib.util.find_spec("focus_data_toolkit")
    if spec is None:
        sys.exit("focus-data-toolkit is not installed (pip install focus-data-toolkit)")
    root = list(spec.submodule_search_locations)[0]
    with open(os.path.join(root, "model", "focus_1_4_model.json")) as f:
        m = json.load(f)
    assert m["focus_version"] == "1.4", m["focus_version"]
    return m["datasets"]


def relation(con, path, fmt):
    if fmt == "parquet":
        return f"read_parquet('{path}')"
    return f"read_csv('{path}', header=true, all_varchar=true)"


def check(con, name, path, fmt, spec, out):
    rel = relation(con, path, fmt)
    cols = con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()
    types = {c[0]: c[1] for c in cols}
    rows = con.execute(f"SELECT COUNT(*) FROM {rel}").fetchone()[0]
    out["datasets"][name] = {"columns": [c[0] for c in cols], "rows": rows}
    bad = out["violations"]
    model_cols = spec["columns"]
    for col, m in model_cols.items():
        if m["feature_level"] == "Mandatory" and col not in types:
            bad.append(f"{name}: mandatory column {col} is missing")
    for col, t in types.items():
        if col.startswith("x_"):
            continue  # custom columns: FOCUS reserves the x_ prefix for them
        m = model_cols.get(col)
        if m is None:
            bad.append(f"{name}: column {col} is not a FOCUS 1.4 {spec['dataset_id']} column")
            continue
        q = f'"{col}"'
        if not m["allows_nulls"]:
            n = con.execute(f"SELECT COUNT(*) FROM {rel} WHERE {q} IS NULL").fetchone()[0]
            if n:
                bad.append(f"{name}: {col} does not allow nulls; {n} row(s) are null")
        if m["allowed_values"]:
            vals = [r[0] for r in con.execute(f"SELECT DISTINCT {q} FROM {rel} WHERE {q} IS NOT NULL").fetchall()]
            for v in vals:
                if v not in m["allowed_values"]:
                    bad.append(f"{name}: {col} = {v!r} is not an allowed value")
        values = [r[0] for r in con.execute(f"SELECT DISTINCT CAST({q} AS VARCHAR) FROM {rel} WHERE {q} IS NOT NULL").fetchall()]
        dt = m["data_type"]
        if dt == "Decimal":
            if fmt == "parquet" and not t.startswith("DECIMAL"):
                bad.append(f"{name}: {col} is {t}, not a decimal")
            for v in values:
                if not DECIMAL.match(v):
                    bad.append(f"{name}: {col} = {v!r} is not plain decimal digits")
                    break
            if m["value_format"] == "Decimal (non-negative)":
                if any(v.startswith("-") for v in values):
                    bad.append(f"{name}: {col} must not be negative")
        elif dt == "Date/Time":
            if fmt == "parquet" and t != "TIMESTAMP WITH TIME ZONE":
                bad.append(f"{name}: {col} is {t}, not a UTC timestamp")
            if fmt == "csv":
                for v in values:
                    if not TIME.match(v):
                        bad.append(f"{name}: {col} = {v!r} is not an ISO 8601 UTC date-time")
                        break
        elif dt == "JSON":
            for v in values:
                try:
                    j = json.loads(v)
                except ValueError:
                    bad.append(f"{name}: {col} = {v[:60]!r} is not JSON")
                    break
                if not isinstance(j, dict):
                    bad.append(f"{name}: {col} = {v[:60]!r} is not a JSON object")
                    break
                if m["value_format"] == "Key-Value" and any(isinstance(x, (dict, list)) for x in j.values()):
                    bad.append(f"{name}: {col} = {v[:60]!r} is not flat key-value")
                    break
        elif dt == "String":
            if fmt == "parquet" and t != "VARCHAR":
                bad.append(f"{name}: {col} is {t}, not text")
            if m["value_format"] == "Currency":
                for v in values:
                    if not CURRENCY.match(v):
                        bad.append(f"{name}: {col} = {v!r} is not an ISO 4217 code")
    return rel


def contract_applied(con, rel, out):
    """ContractApplied against the shape the toolkit's JSON schema gives (Elements[] with
    ContractId, ContractCommitmentId and a cost)."""
    vals = con.execute(f"SELECT ContractApplied FROM {rel} WHERE ContractApplied IS NOT NULL").fetchall()
    for (v,) in vals:
        j = json.loads(v)
        els = j.get("Elements")
        if not isinstance(els, list) or not els:
            out["violations"].append(f"ContractApplied {v[:80]!r} has no Elements")
            return
        for e in els:
            if not isinstance(e.get("ContractId"), str) or not isinstance(e.get("ContractCommitmentId"), str):
                out["violations"].append(f"ContractApplied element {e!r} lacks its ids")
                return
            if not isinstance(e.get("ContractCommitmentAppliedCost"), (int, float)):
                out["violations"].append(f"ContractApplied element {e!r} has no cost")
                return
    out["contract_applied_rows"] = len(vals)


def totals(con, rel, fmt):
    d = "CAST({} AS DECIMAL(38,12))" if fmt == "csv" else "{}"
    cols = ["ListCost", "ContractedCost", "EffectiveCost", "BilledCost"]
    q = ", ".join(f"CAST(SUM({d.format(c)}) AS VARCHAR)" for c in cols)
    by = con.execute(
        f"SELECT ChargeCategory, {q} FROM {rel} GROUP BY ChargeCategory ORDER BY 1"
    ).fetchall()
    inv = con.execute(
        f"SELECT InvoiceId, CAST(SUM({d.format('BilledCost')}) AS VARCHAR) FROM {rel} "
        "WHERE InvoiceId IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {
        "by_category": {r[0]: dict(zip(cols, r[1:])) for r in by},
        "billed_by_invoice": {r[0]: r[1] for r in inv},
    }


def main():
    root, fmt = sys.argv[1], sys.argv[2]
    m = model()
    con = duckdb.connect()
    out = {"violations": [], "datasets": {}}
    rels = {}
    for name, title in DATASETS.items():
        path = os.path.join(root, f"{name}.{fmt}")
        rels[name] = check(con, name, path, fmt, m[title], out)
    contract_applied(con, rels["cost_and_usage"], out)
    out["totals"] = totals(con, rels["cost_and_usage"], fmt)
    d = "CAST(BilledCost AS DECIMAL(38,12))" if fmt == "csv" else "BilledCost"
    out["invoice_detail_by_invoice"] = {
        r[0]: r[1]
        for r in con.execute(
            f"SELECT InvoiceId, CAST(SUM({d}) AS VARCHAR) FROM {rels['invoice_detail']} GROUP BY 1"
        ).fetchall()
    }
    print(json.dumps(out, sort_keys=True))


main()
