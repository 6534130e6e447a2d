-- Chargeback by charge: the list cost of one business month per team and model, split into
-- input (uncached input, both cache writes, cache reads), output and web search. The split is
-- row arithmetic on money columns, exact on every engine: money is DECIMAL(28,12), so the sum
-- of four columns is DECIMAL(31,12) and its SUM DECIMAL(38,12), no digit dropped (Spark would
-- drop one at DECIMAL(38,12)). input + output + web search = list cost on every line.
-- Placeholder: `month` (YYYY-MM, business timezone; `--param month=…` also fills the
-- neighbouring partitions). Team assignment as in sql/report.sql (a key's team wins over its
-- workspace's, an id over a name). Priced rows only: UNPRICED usage has no cost to split
-- (`tokenledger report` lists it with its tokens).
WITH team_keys AS (
  SELECT name, team FROM teams WHERE kind = 'api_key'
),
team_workspaces AS (
  SELECT name, team FROM teams WHERE kind = 'workspace'
),
named AS (
  -- Names from the latest workspace and key lists, as in sql/report.sql.
  SELECT
    r.workspace_id,
    COALESCE(wn.workspace_name, r.workspace_name) AS workspace_name,
    r.api_key_id,
    COALESCE(kn.api_key_name, r.api_key_name) AS api_key_name,
    r.model_canonical,
    r.cost_uncached_input + r.cost_cache_write_5m + r.cost_cache_write_1h + r.cost_cache_write_30m
      + r.cost_cache_write_12h + r.cost_cache_read AS input_cost,
    r.cost_output,
    r.cost_web_search,
    r.list_cost
  FROM rated_usage r
  LEFT JOIN workspaces wn ON r.workspace_id = wn.workspace_id
  LEFT JOIN api_keys kn ON r.api_key_id = kn.api_key_id
  WHERE r.business_month = '{{month}}'
    AND r.month IN ('{{month_before}}', '{{month}}', '{{month_after}}')
    AND r.pricing_status IN ('priced', 'provider_list')
),
rated AS (
  SELECT
    COALESCE(tki.team, tk.team, twi.team, tw.team, 'Unallocated') AS team,
    n.model_canonical AS model,
    n.input_cost,
    n.cost_output,
    n.cost_web_search,
    n.list_cost
  FROM named n
  LEFT JOIN team_keys tki ON n.api_key_id = tki.name
  LEFT JOIN team_keys tk ON n.api_key_name = tk.name
  LEFT JOIN team_workspaces twi ON n.workspace_id = twi.name
  LEFT JOIN team_workspaces tw ON n.workspace_name = tw.name
)
SELECT
  team,
  model,
  SUM(input_cost) AS input_cost_usd,
  SUM(cost_output) AS output_cost_usd,
  SUM(cost_web_search) AS web_search_cost_usd,
  SUM(list_cost) AS list_cost_usd
FROM rated
GROUP BY team, model
ORDER BY team, model
