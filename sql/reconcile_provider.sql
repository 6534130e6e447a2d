-- Reconciliation, provider side: the cost report per bucket × workspace × model × charge
-- (the cost report's buckets are UTC days; `tokenledger reconcile` keys each by the UTC date
-- of its start). Portable SQL: `month` is the partition key, no date functions.
SELECT
  bucket_start,
  workspace_id,
  workspace_name,
  model,
  cost_type,
  token_type,
  currency,
  SUM(amount) AS amount,
  SUM(list_amount) AS list_amount
FROM cost
WHERE month = '{{month}}'
  -- OpenAI's Costs API rows are loaded, but reconciled only once OpenAI usage is read.
  AND provider = 'anthropic'
GROUP BY bucket_start, workspace_id, workspace_name, model, cost_type, token_type, currency
