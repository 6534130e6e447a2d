"""Runs shipped sql/ queries on DuckDB or Spark SQL over a tokenledger lake, with no code of
tokenledger's: each table is read straight from its Parquet files with Hive partitioning, as an
analyst would. Prints one JSON object: query name -> {"columns": [[name, type], ...],
"rows": [[value, ...], ...]}, decimals and dates as exact text.

usage: run_sql.py ENGINE LAKE_DIR JOBS_JSON
  ENGINE    duckdb | spark | spark-la (Spark with a Los Angeles session time zone)
  JOBS_JSON [{"name": ..., "sql": ...}, ...] (placeholders already filled); a job with
            "view": NAME registers its result as a view for the jobs after it
"""
import datetime
import decimal
import json
import os
import sys

MONTHLY = {"usage", "usage_coverage", "cost", "cost_coverage", "usage_pricing"}


def tables(lake):
    for name in sorted(os.listdir(lake)):
        d = os.path.join(lake, name)
        if name.startswith((".", "_")) or not os.path.isdir(d):
            continue
        has_parquet = any(f.endswith(".parquet") for _, _, fs in os.walk(d) for f in fs)
        if has_parquet:
            yield name, d


def value(v):
    if isinstance(v, decimal.Decimal):
        return format(v, "f")  # plain digits: str() says 0E-12 for a zero of scale 12
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.isoformat()
    if isinstance(v, datetime.date):
        return v.isoformat()
    return v


def data_glob(d):
    """The table's data files, at their partition depth: a `**` glob would also read the
    Parquet checkpoints under `_delta_log/`."""
    import glob

    if glob.glob(f"{d}/provider=*/month=*"):
        return f"{d}/provider=*/month=*/*.parquet"
    if glob.glob(f"{d}/provider=*"):
        return f"{d}/provider=*/*.parquet"
    return f"{d}/*.parquet"


def run_duckdb(lake, jobs):
    import duckdb

    c = duckdb.connect()
    # The documented setting: timestamps are shown and converted in UTC.
    c.execute("SET TimeZone = 'UTC'")
    for name, d in tables(lake):
        c.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{data_glob(d)}', "
            "hive_partitioning = true, hive_types_autocast = false)"
        )
    out = {}
    for j in jobs:
        if "view" in j:
            c.execute(f"CREATE VIEW {j['view']} AS {j['sql']}")
            continue
        rel = c.execute(j["sql"])
        cols = [[d[0], str(d[1])] for d in rel.description]
        out[j["name"]] = {"columns": cols, "rows": [[value(x) for x in r] for r in rel.fetchall()]}
    return out


def run_spark(lake, jobs, session_tz):
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("tokenledger-sql")
        # The documented settings (README, "Reading the lake without tokenledger").
        .config("spark.sql.session.timeZone", session_tz)
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    for name, d in tables(lake):
        spark.read.parquet(d).createOrReplaceTempView(name)
    out = {}
    for j in jobs:
        if "view" in j:
            spark.sql(j["sql"]).createOrReplaceTempView(j["view"])
            continue
        df = spark.sql(j["sql"])
        cols = [[f.name, f.dataType.simpleString()] for f in df.schema.fields]
        out[j["name"]] = {"columns": cols, "rows": [[value(x) for x in r] for r in df.collect()]}
    spark.stop()
    return out


def main():
    engine, lake, jobs_file = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(jobs_file) as f:
        jobs = json.load(f)
    if engine == "duckdb":
        out = run_duckdb(lake, jobs)
    elif engine == "spark":
        out = run_spark(lake, jobs, "UTC")
    elif engine == "spark-la":
        out = run_spark(lake, jobs, "America/Los_Angeles")
    else:
        sys.exit(f"unknown engine {engine!r}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
