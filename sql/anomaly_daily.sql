-- Anomalies: list cost per UTC day × API key × workspace × model, from rated_usage (priced rows;
-- UNPRICED usage has no cost to compare). `tokenledger anomalies` builds its daily series per
-- key, workspace, model and the organisation from these rows.
SELECT
  strftime(bucket_start, '%Y-%m-%d') AS day,
  api_key_id,
  api_key_name,
  workspace_id,
  workspace_name,
  model_canonical AS model,
  SUM(list_cost) AS list_cost_usd
FROM rated_usage
WHERE pricing_status = 'priced'
GROUP BY strftime(bucket_start, '%Y-%m-%d'), api_key_id, api_key_name, workspace_id, workspace_name, model_canonical
