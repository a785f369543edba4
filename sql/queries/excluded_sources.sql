-- Sources of a job's pool (after its sources, vocabulary and predicate) that its quality filter
-- leaves out entirely, and how many of their segments carry quality flags at all. Run after
-- eligible.sql has defined _eligible; {where} is the spec's predicate.
SELECT source, count(*) AS segments,
       count(*) FILTER (WHERE is_instance IS NOT NULL OR integrity IS NOT NULL
                          OR quality_regularity IS NOT NULL) AS flagged
FROM filter_0
WHERE (NOT EXISTS (SELECT 1 FROM _job_sources) OR source IN (SELECT name FROM _job_sources))
  AND (NOT EXISTS (SELECT 1 FROM _job_vocab) OR category IN (SELECT name FROM _job_vocab))
  AND ({where})
  AND source NOT IN (SELECT DISTINCT split_part(source_image, '/', 1) FROM _eligible)
GROUP BY source
ORDER BY source;
