-- The view `rated_usage`: every usage row with what pricing added to it, one row per usage
-- row. tokenledger stores only the added columns (the lake table `usage_pricing`: rates and
-- exact costs, status, the calendar days); the usage row itself stays in `usage`, so a month
-- is priced without writing its dimensions a second time. The two join on the usage row's
-- key: (ingest_id, source_file, source_row) is unique in `usage`, and the partition keys
-- `provider` and `month` (the same for a usage part and its pricing part) let engines prune.
-- Costs are stored, never computed here, so every engine reads the same digits.
-- Register it once per session, e.g. DuckDB: CREATE VIEW rated_usage AS <this query>;
-- Spark: spark.sql(<this query>).createOrReplaceTempView('rated_usage'). `tokenledger sql`
-- and the shipped queries (sql/report.sql, sql/reconcile_ours.sql, ...) read it by that name.
-- Columns: every column of `usage` in its order, then what pricing added (`tokenledger sql
-- --tables` lists them), then the partition key `month`.
-- Portable SQL (DuckDB, Spark, Trino, polars): a plain inner join, no engine's functions.
SELECT
  u.bucket_start,
  u.bucket_end,
  u.bucket_width,
  u.provider,
  u.workspace_id,
  u.workspace_name,
  u.api_key_id,
  u.api_key_name,
  u.model,
  u.service_tier,
  u.context_window,
  u.inference_geo,
  u.speed,
  u.account_id,
  u.service_account_id,
  u.product,
  u.agent_id,
  u.actor_type,
  u.actor_id,
  u.actor_email,
  u.uncached_input_tokens,
  u.cache_write_5m_tokens,
  u.cache_write_1h_tokens,
  u.cache_read_tokens,
  u.output_tokens,
  u.cache_write_30m_tokens,
  u.cache_write_12h_tokens,
  u.web_search_requests,
  u.cache_write_assumed_5m,
  u.unit,
  u.unit_quantity,
  u.input_audio_tokens,
  u.output_audio_tokens,
  u.input_image_tokens,
  u.output_image_tokens,
  u.requests,
  u.source_format,
  u.source_file,
  u.source_row,
  u.ingest_id,
  p.model_canonical,
  p.pricing_status,
  p.pricing_note,
  p.rate_uncached_input,
  p.rate_cache_write_5m,
  p.rate_cache_write_1h,
  p.rate_cache_read,
  p.rate_output,
  p.rate_cache_write_30m,
  p.rate_cache_write_12h,
  p.rate_web_search,
  p.cost_uncached_input,
  p.cost_cache_write_5m,
  p.cost_cache_write_1h,
  p.cost_cache_read,
  p.cost_output,
  p.cost_cache_write_30m,
  p.cost_cache_write_12h,
  p.cost_web_search,
  p.rate_unit,
  p.cost_unit,
  p.list_cost,
  p.price_book,
  p.utc_day,
  p.business_day,
  p.business_month,
  u.month
FROM usage u
JOIN usage_pricing p
  ON p.provider = u.provider
  AND p.month = u.month
  AND p.ingest_id = u.ingest_id
  AND p.source_file = u.source_file
  AND p.source_row = u.source_row
