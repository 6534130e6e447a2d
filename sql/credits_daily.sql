-- Credits: each provider's list cost per UTC day, from rated_usage: what `tokenledger credits`
-- consumes lots with (the credits ledger stays on the provider's UTC days). UNPRICED rows have
-- no list cost and are counted apart: they consume no credit here, and the command says so.
SELECT
  provider,
  strftime(bucket_start, '%Y-%m-%d') AS day,
  SUM(list_cost) AS list_cost_usd,
  SUM(CASE WHEN pricing_status = 'UNPRICED' THEN 1 ELSE 0 END) AS unpriced_rows
FROM rated_usage
GROUP BY provider, strftime(bucket_start, '%Y-%m-%d')
ORDER BY provider, day
