-- Credits: each provider's list cost per UTC day, from rated_usage: what `tokenledger credits`
-- consumes lots with. The credits ledger stays on the provider's UTC days (`utc_day`), whatever
-- the business `timezone`: lots expire and the Console's balance moves on UTC days. UNPRICED
-- rows have no list cost and are counted apart: they consume no credit here, and the command
-- says so. Portable SQL (DuckDB, Spark, Trino, polars): no date functions.
SELECT
  provider,
  utc_day AS day,
  SUM(list_cost) AS list_cost_usd,
  SUM(CASE WHEN pricing_status = 'UNPRICED' THEN 1 ELSE 0 END) AS unpriced_rows
FROM rated_usage
GROUP BY provider, utc_day
ORDER BY provider, day
