-- Reconciliation, provider side: one provider's cost report per bucket × workspace × model × charge
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
  -- Each provider is reconciled on its own: its usage against its cost report.
  AND provider = '{{provider}}'
GROUP BY bucket_start, workspace_id, workspace_name, model, cost_type, token_type, currency
