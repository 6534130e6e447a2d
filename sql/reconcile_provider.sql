-- Reconciliation, provider side: the cost report per day × workspace × model × charge.
SELECT
  strftime(bucket_start, '%Y-%m-%d') AS day,
  workspace_id,
  workspace_name,
  model,
  cost_type,
  token_type,
  currency,
  SUM(amount) AS amount
FROM cost
WHERE strftime(bucket_start, '%Y-%m') = '{{month}}'
GROUP BY strftime(bucket_start, '%Y-%m-%d'), workspace_id, workspace_name, model, cost_type, token_type, currency
