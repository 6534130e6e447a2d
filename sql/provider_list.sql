-- Provider-list rates: for a model the price book does not know, the rate the provider's own
-- `list_amount` implies (status `provider_list`, said on every report) instead of UNPRICED.
-- `tokenledger` runs both statements and divides, per UTC day × model × token class (× tier,
-- context window and geo where the cost rows are split by them): list amount ÷ tokens, per
-- million tokens, rounded to 6 decimals (the book's precision). Portable SQL, no date
-- functions: each bucket is keyed by the UTC date of its start in Rust.
-- 1. The provider side: list amounts of token charges (Analytics cost queries, or cost
--    reports that carry a list amount).
SELECT
  provider,
  bucket_start,
  model,
  service_tier,
  context_window,
  inference_geo,
  token_type,
  SUM(list_amount) AS list_amount
FROM cost
WHERE list_amount IS NOT NULL
  AND token_type IS NOT NULL
  AND model IS NOT NULL
  AND (cost_type IS NULL OR cost_type = 'tokens')
GROUP BY provider, bucket_start, model, service_tier, context_window, inference_geo, token_type;
-- 2. Our side: the tokens of those models (`models`: the names the cost rows use, quoted).
SELECT
  provider,
  bucket_start,
  model,
  service_tier,
  context_window,
  inference_geo,
  SUM(uncached_input_tokens) AS uncached_input_tokens,
  SUM(cache_write_5m_tokens) AS cache_write_5m_tokens,
  SUM(cache_write_1h_tokens) AS cache_write_1h_tokens,
  SUM(cache_read_tokens) AS cache_read_tokens,
  SUM(output_tokens) AS output_tokens,
  SUM(cache_write_30m_tokens) AS cache_write_30m_tokens,
  SUM(cache_write_12h_tokens) AS cache_write_12h_tokens
FROM usage
WHERE model IN ({{models}})
GROUP BY provider, bucket_start, model, service_tier, context_window, inference_geo
