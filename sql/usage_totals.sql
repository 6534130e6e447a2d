-- Token totals per month, workspace and model: what `tokenledger usage` prints. `month` is
-- the partition key of the lake's usage table (usage/provider=*/month=*/part-*.parquet): the
-- UTC month of each bucket, as the provider counts it (the business-timezone months of the
-- chargeback are `tokenledger report`'s, sql/report.sql). Portable SQL: the same text runs
-- unchanged in DuckDB and Spark over the lake with Hive partitioning (tests check all agree).
SELECT
  month,
  workspace_id,
  workspace_name,
  model,
  SUM(uncached_input_tokens) AS uncached_input_tokens,
  SUM(cache_write_5m_tokens) AS cache_write_5m_tokens,
  SUM(cache_write_1h_tokens) AS cache_write_1h_tokens,
  SUM(cache_read_tokens) AS cache_read_tokens,
  SUM(output_tokens) AS output_tokens,
  SUM(cache_write_30m_tokens) AS cache_write_30m_tokens,
  SUM(cache_write_12h_tokens) AS cache_write_12h_tokens,
  SUM(web_search_requests) AS web_search_requests,
  COUNT(*) AS usage_rows
FROM usage
GROUP BY month, workspace_id, workspace_name, model
ORDER BY month, workspace_name, model
