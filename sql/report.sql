-- Chargeback report: list cost and tokens of one month, grouped by the --by dimensions.
-- What `tokenledger report --month M --by …` runs (polars SQL; `--show-sql` prints it filled in).
-- Placeholders: the month (YYYY-MM, UTC) and the grouping columns of the --by dimensions,
-- e.g. `workspace_id, workspace_name, model`.
-- `rated_usage` holds one priced row per usage row (see ARCHITECTURE.md); `team_keys` and
-- `team_workspaces` map API-key and workspace names to teams (from tokenledger.toml).
-- Rounding to cents happens after this query, in Rust (largest remainder, see src/money.rs).
WITH rated AS (
  SELECT
    r.workspace_id,
    r.workspace_name,
    r.api_key_id,
    COALESCE(r.api_key_name, '(Console, no key)') AS api_key_name,
    r.model_canonical AS model,
    r.service_tier,
    strftime(r.bucket_start, '%Y-%m-%d') AS day,
    COALESCE(tk.team, tw.team, '(unassigned)') AS team,
    r.pricing_status,
    r.uncached_input_tokens,
    r.cache_write_5m_tokens,
    r.cache_write_1h_tokens,
    r.cache_read_tokens,
    r.output_tokens,
    r.web_search_requests,
    r.list_cost
  FROM rated_usage r
  LEFT JOIN team_keys tk ON r.api_key_name = tk.name
  LEFT JOIN team_workspaces tw ON r.workspace_name = tw.name
  WHERE strftime(r.bucket_start, '%Y-%m') = '{{month}}'
)
SELECT
  {{dims}},
  pricing_status,
  SUM(uncached_input_tokens) AS uncached_input_tokens,
  SUM(cache_write_5m_tokens) AS cache_write_5m_tokens,
  SUM(cache_write_1h_tokens) AS cache_write_1h_tokens,
  SUM(cache_read_tokens) AS cache_read_tokens,
  SUM(output_tokens) AS output_tokens,
  SUM(web_search_requests) AS web_search_requests,
  SUM(list_cost) AS list_cost_usd_exact
FROM rated
GROUP BY {{dims}}, pricing_status
ORDER BY {{dims}}, pricing_status
