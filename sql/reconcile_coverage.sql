-- Reconciliation: which UTC days of the month each side has data for (coverage, not rows: a
-- day the provider reported as empty is covered). Two statements: usage, then cost.
SELECT DISTINCT strftime(bucket_start, '%Y-%m-%d') AS day FROM usage_coverage
WHERE strftime(bucket_start, '%Y-%m') = '{{month}}';

SELECT DISTINCT strftime(bucket_start, '%Y-%m-%d') AS day FROM cost_coverage
WHERE strftime(bucket_start, '%Y-%m') = '{{month}}';
