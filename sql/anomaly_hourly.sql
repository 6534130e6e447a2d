-- Anomalies: list cost per UTC hour × API key, from the hourly and 1-minute buckets of
-- rated_usage (daily buckets have no hours): the series `burst` compares hour of day by hour
-- of day. `hour` is `YYYY-MM-DD HH`.
SELECT
  strftime(bucket_start, '%Y-%m-%d %H') AS hour,
  api_key_id,
  SUM(list_cost) AS list_cost_usd
FROM rated_usage
WHERE pricing_status = 'priced' AND bucket_width <> '1d' AND api_key_id IS NOT NULL
GROUP BY strftime(bucket_start, '%Y-%m-%d %H'), api_key_id
