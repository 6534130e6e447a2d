-- Token totals per month, workspace and model: what `tokenledger usage` prints.
-- Table `usage` is the lake's usage table (usage/provider=*/month=*/part-0.parquet).
-- The same text runs unchanged in DuckDB over a view named `usage` (tests check both agree).
SELECT
  strftime(bucket_start, '%Y-%m') AS month,
  workspace_id,
  workspace_name,
  model,
  SUM(uncached_input_tokens) AS uncached_input_tokens,
  SUM(cache_write_5m_tokens) AS cache_write_5m_tokens,
  SUM(cache_write_1h_tokens) AS cache_write_1h_tokens,
  SUM(cache_read_tokens) AS cache_read_tokens,
  SUM(output_tokens) AS output_tokens,
  SUM(web_search_requests) AS web_search_requests,
  COUNT(*) AS usage_rows
FROM usage
GROUP BY strftime(bucket_start, '%Y-%m'), workspace_id, workspace_name, model
ORDER BY month, workspace_name, model
