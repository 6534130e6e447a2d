-- Anomalies: list cost per usage bucket × API key × workspace × model, from rated_usage
-- (priced rows; UNPRICED usage has no cost to compare). Portable SQL (DuckDB, Spark, Trino,
-- polars): no date functions, the bucket start stays a UTC timestamp.
-- `tokenledger anomalies` assigns each bucket to a day and an hour of the business timezone
-- (`timezone` in tokenledger.toml): an hourly or 1-minute bucket by its start in that zone, a
-- daily bucket by its UTC date. It then builds the daily series per key, workspace, model and
-- the organisation, and the hourly series per key that `burst` compares hour of day by hour of
-- day (daily buckets have no hours).
SELECT
  bucket_start,
  bucket_width,
  api_key_id,
  api_key_name,
  workspace_id,
  workspace_name,
  model_canonical AS model,
  SUM(list_cost) AS list_cost_usd
FROM rated_usage
WHERE pricing_status IN ('priced', 'provider_list')
GROUP BY bucket_start, bucket_width, api_key_id, api_key_name, workspace_id, workspace_name, model_canonical
