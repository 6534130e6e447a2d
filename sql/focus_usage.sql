-- FOCUS 1.4 export, the usage side (`src/export/scan.rs` computes the same in one Arrow pass;
-- a test checks both agree): one row per UTC day × provider × workspace (project) ×
-- API key × model × tier × context window × inference geo × unit, with each token class's
-- count and cost at the price book in force (overrides included: FOCUS's ContractedCost).
-- `tokenledger export focus --month M` runs it over the rated parts of the UTC `month`
-- partition (FOCUS billing periods are UTC calendar months, whatever the business timezone)
-- and turns each non-zero class into one Cost and Usage row (src/export/focus.rs); list cost
-- at the public book, credits drawn and the invoice's billed cost are added there.
-- Placeholder: `month` (YYYY-MM, UTC). Names from the latest workspace and key lists; teams as
-- in sql/report.sql (a key's team wins over its workspace's, an id over a name). Portable SQL.
WITH agg AS (
  -- The month's rows summed first (millions of rows → thousands), so the joins below touch
  -- only the sums.
  SELECT
    utc_day, provider, workspace_id, workspace_name, api_key_id, api_key_name, model_canonical,
    service_tier, context_window, inference_geo, unit, pricing_status,
    MIN(ingest_id) AS first_ingest_id,
    MAX(ingest_id) AS last_ingest_id,
    SUM(uncached_input_tokens) AS uncached_input_tokens,
    SUM(cache_write_5m_tokens) AS cache_write_5m_tokens,
    SUM(cache_write_1h_tokens) AS cache_write_1h_tokens,
    SUM(cache_read_tokens) AS cache_read_tokens,
    SUM(output_tokens) AS output_tokens,
    SUM(cache_write_30m_tokens) AS cache_write_30m_tokens,
    SUM(cache_write_12h_tokens) AS cache_write_12h_tokens,
    SUM(web_search_requests) AS web_search_requests,
    SUM(unit_quantity) AS unit_quantity,
    SUM(cost_uncached_input) AS cost_uncached_input,
    SUM(cost_cache_write_5m) AS cost_cache_write_5m,
    SUM(cost_cache_write_1h) AS cost_cache_write_1h,
    SUM(cost_cache_read) AS cost_cache_read,
    SUM(cost_output) AS cost_output,
    SUM(cost_cache_write_30m) AS cost_cache_write_30m,
    SUM(cost_cache_write_12h) AS cost_cache_write_12h,
    SUM(cost_web_search) AS cost_web_search,
    SUM(cost_unit) AS cost_unit
  FROM rated_usage
  WHERE month = '{{month}}'
  GROUP BY utc_day, provider, workspace_id, workspace_name, api_key_id, api_key_name, model_canonical,
    service_tier, context_window, inference_geo, unit, pricing_status
),
team_keys AS (
  SELECT name, team, cost_center FROM teams WHERE kind = 'api_key'
),
team_workspaces AS (
  SELECT name, team, cost_center FROM teams WHERE kind = 'workspace'
),
named AS (
  SELECT
    a.*,
    COALESCE(wn.workspace_name, a.workspace_name) AS ws_name,
    COALESCE(kn.api_key_name, a.api_key_name) AS key_name
  FROM agg a
  LEFT JOIN workspaces wn ON a.workspace_id = wn.workspace_id
  LEFT JOIN api_keys kn ON a.api_key_id = kn.api_key_id
),
teamed AS (
  SELECT
    n.*,
    COALESCE(tki.team, tk.team, twi.team, tw.team) AS team,
    -- The cost center of the team that matched, not the first one of any match.
    CASE
      WHEN tki.team IS NOT NULL THEN tki.cost_center
      WHEN tk.team IS NOT NULL THEN tk.cost_center
      WHEN twi.team IS NOT NULL THEN twi.cost_center
      ELSE tw.cost_center
    END AS cost_center
  FROM named n
  LEFT JOIN team_keys tki ON n.api_key_id = tki.name
  LEFT JOIN team_keys tk ON n.key_name = tk.name
  LEFT JOIN team_workspaces twi ON n.workspace_id = twi.name
  LEFT JOIN team_workspaces tw ON n.ws_name = tw.name
)
-- Summed again: rows stored under an older name of the same workspace or key are one group.
SELECT
  utc_day,
  provider,
  workspace_id,
  ws_name AS workspace_name,
  api_key_id,
  key_name AS api_key_name,
  team,
  cost_center,
  model_canonical AS model,
  service_tier,
  context_window,
  inference_geo,
  unit,
  pricing_status,
  MIN(first_ingest_id) AS first_ingest_id,
  MAX(last_ingest_id) AS last_ingest_id,
  SUM(uncached_input_tokens) AS uncached_input_tokens,
  SUM(cache_write_5m_tokens) AS cache_write_5m_tokens,
  SUM(cache_write_1h_tokens) AS cache_write_1h_tokens,
  SUM(cache_read_tokens) AS cache_read_tokens,
  SUM(output_tokens) AS output_tokens,
  SUM(cache_write_30m_tokens) AS cache_write_30m_tokens,
  SUM(cache_write_12h_tokens) AS cache_write_12h_tokens,
  SUM(web_search_requests) AS web_search_requests,
  SUM(unit_quantity) AS unit_quantity,
  SUM(cost_uncached_input) AS cost_uncached_input,
  SUM(cost_cache_write_5m) AS cost_cache_write_5m,
  SUM(cost_cache_write_1h) AS cost_cache_write_1h,
  SUM(cost_cache_read) AS cost_cache_read,
  SUM(cost_output) AS cost_output,
  SUM(cost_cache_write_30m) AS cost_cache_write_30m,
  SUM(cost_cache_write_12h) AS cost_cache_write_12h,
  SUM(cost_web_search) AS cost_web_search,
  SUM(cost_unit) AS cost_unit
FROM teamed
GROUP BY utc_day, provider, workspace_id, ws_name, api_key_id, key_name, team, cost_center,
  model_canonical, service_tier, context_window, inference_geo, unit, pricing_status
ORDER BY utc_day, provider, workspace_id, api_key_id, model, service_tier, context_window,
  inference_geo, unit, pricing_status
