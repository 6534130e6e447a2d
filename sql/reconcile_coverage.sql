-- Reconciliation: which buckets of the month each side of one provider has data for (coverage, not rows: a
-- day the provider reported as empty is covered). `tokenledger reconcile` counts a UTC day
-- covered when a covered bucket starts on it. Two statements: usage, then cost. Portable SQL:
-- `month` is the partition key (the UTC month of the bucket).
SELECT DISTINCT bucket_start FROM usage_coverage
WHERE month = '{{month}}' AND provider = '{{provider}}';

SELECT DISTINCT bucket_start FROM cost_coverage
WHERE month = '{{month}}' AND provider = '{{provider}}';
