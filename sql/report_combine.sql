-- Chargeback report, second step: `sql/report.sql` runs once per rated part file (so memory
-- follows the part, not the month); this sums those partial results. Sums compose, so the
-- result is the same as one query over the whole month.
-- Placeholder: the grouping columns of the --by dimensions.
SELECT
  {{dims}},
  pricing_status,
  SUM(uncached_input_tokens) AS uncached_input_tokens,
  SUM(cache_write_5m_tokens) AS cache_write_5m_tokens,
  SUM(cache_write_1h_tokens) AS cache_write_1h_tokens,
  SUM(cache_read_tokens) AS cache_read_tokens,
  SUM(output_tokens) AS output_tokens,
  SUM(cache_write_30m_tokens) AS cache_write_30m_tokens,
  SUM(cache_write_12h_tokens) AS cache_write_12h_tokens,
  SUM(web_search_requests) AS web_search_requests,
  SUM(list_cost_usd_exact) AS list_cost_usd_exact
FROM partials
GROUP BY {{dims}}, pricing_status
ORDER BY {{order}}, pricing_status
