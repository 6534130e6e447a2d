-- Chargeback report: list cost and tokens of one business month, grouped by the --by
-- dimensions. What `tokenledger report --month M --by …` runs (`--show-sql` prints it filled
-- in). Placeholders: `month` (YYYY-MM, a month of the business timezone) and `dims`, the
-- grouping columns of the --by dimensions, e.g. `team, workspace_id, workspace_name, model`.
-- Portable SQL (DuckDB, Spark, Trino, polars): no date functions. Each rated row carries its
-- `business_month` and `business_day` (in the configured `timezone`: an hourly or finer bucket
-- by its start there, a daily bucket on its UTC date), so no engine's session time zone
-- moves a row; the `month` partition key (UTC) only prunes to the three partitions a business
-- month can touch.
-- Tables: `rated_usage` (one priced row per usage row, see ARCHITECTURE.md); `workspaces` and
-- `api_keys` (the latest lists: a list ingested after the usage still names it); `teams` (the
-- `[[team]]` map of tokenledger.toml, written to the lake by every command that reads it: a
-- key's team wins over its workspace's, an id over a name; no team: 'Unallocated').
-- Rounding to cents happens after this query, in Rust (largest remainder, see src/money.rs).
WITH team_keys AS (
  SELECT name, team FROM teams WHERE kind = 'api_key'
),
team_workspaces AS (
  SELECT name, team FROM teams WHERE kind = 'workspace'
),
named AS (
  -- Names from the latest workspace and key lists (a list ingested after the usage still
  -- names it); the names stored with the row are those known when it was ingested.
  SELECT
    r.provider,
    r.business_day,
    r.workspace_id,
    COALESCE(wn.workspace_name, r.workspace_name) AS workspace_name,
    r.api_key_id,
    COALESCE(kn.api_key_name, r.api_key_name) AS api_key_name,
    r.model_canonical,
    r.service_tier,
    r.product,
    r.actor_type,
    r.actor_id,
    r.actor_email,
    r.pricing_status,
    r.uncached_input_tokens,
    r.cache_write_5m_tokens,
    r.cache_write_1h_tokens,
    r.cache_read_tokens,
    r.output_tokens,
    r.cache_write_30m_tokens,
    r.cache_write_12h_tokens,
    r.web_search_requests,
    r.list_cost
  FROM rated_usage r
  LEFT JOIN workspaces wn ON r.workspace_id = wn.workspace_id
  LEFT JOIN api_keys kn ON r.api_key_id = kn.api_key_id
  WHERE r.business_month = '{{month}}'
    AND r.month IN ('{{month_before}}', '{{month}}', '{{month_after}}')
),
rated AS (
  SELECT
    n.provider,
    n.workspace_id,
    n.workspace_name,
    n.api_key_id,
    COALESCE(n.api_key_name, '(Console, no key)') AS api_key_name,
    n.model_canonical AS model,
    n.service_tier,
    n.product,
    n.actor_type,
    n.actor_id,
    n.actor_email,
    n.business_day AS day,
    COALESCE(tki.team, tk.team, twi.team, tw.team, 'Unallocated') AS team,
    n.pricing_status,
    n.uncached_input_tokens,
    n.cache_write_5m_tokens,
    n.cache_write_1h_tokens,
    n.cache_read_tokens,
    n.output_tokens,
    n.cache_write_30m_tokens,
    n.cache_write_12h_tokens,
    n.web_search_requests,
    n.list_cost
  FROM named n
  LEFT JOIN team_keys tki ON n.api_key_id = tki.name
  LEFT JOIN team_keys tk ON n.api_key_name = tk.name
  LEFT JOIN team_workspaces twi ON n.workspace_id = twi.name
  LEFT JOIN team_workspaces tw ON n.workspace_name = tw.name
)
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
  SUM(list_cost) AS list_cost_usd_exact
FROM rated
GROUP BY {{dims}}, pricing_status
ORDER BY {{order}}, pricing_status
