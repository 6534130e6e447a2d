-- Reconciliation, our side: list cost per UTC day × workspace × model × tier from rated_usage,
-- one column per charge (the cost columns of rated_usage; reconcile pairs each with the cost
-- report's token_type), plus the token counts of each class (the rates the price-book check
-- compares) and of UNPRICED rows. The provider's cost report and
-- invoice are on UTC days and months, so reconciliation is too (`utc_day`, and `month`, the
-- partition key), whatever the business `timezone`. What `tokenledger reconcile --month M`
-- reads, once per rated part file (the sums are added up across parts). Portable SQL.
SELECT
  utc_day AS day,
  workspace_id,
  workspace_name,
  model_canonical AS model,
  service_tier,
  pricing_status,
  SUM(cost_uncached_input) AS cost_uncached_input,
  SUM(cost_cache_write_5m) AS cost_cache_write_5m,
  SUM(cost_cache_write_1h) AS cost_cache_write_1h,
  SUM(cost_cache_read) AS cost_cache_read,
  SUM(cost_output) AS cost_output,
  SUM(cost_cache_write_30m) AS cost_cache_write_30m,
  SUM(cost_cache_write_12h) AS cost_cache_write_12h,
  SUM(cost_web_search) AS cost_web_search,
  SUM(uncached_input_tokens + cache_write_5m_tokens + cache_write_1h_tokens + cache_write_30m_tokens + cache_write_12h_tokens + cache_read_tokens + output_tokens) AS tokens,
  SUM(uncached_input_tokens) AS uncached_input_tokens,
  SUM(cache_write_5m_tokens) AS cache_write_5m_tokens,
  SUM(cache_write_1h_tokens) AS cache_write_1h_tokens,
  SUM(cache_read_tokens) AS cache_read_tokens,
  SUM(output_tokens) AS output_tokens,
  SUM(cache_write_30m_tokens) AS cache_write_30m_tokens,
  SUM(cache_write_12h_tokens) AS cache_write_12h_tokens,
  SUM(web_search_requests) AS web_search_requests,
  SUM(unit_quantity) AS unit_quantity
FROM rated_usage
WHERE month = '{{month}}' AND provider = '{{provider}}'
GROUP BY utc_day, workspace_id, workspace_name, model_canonical, service_tier, pricing_status
