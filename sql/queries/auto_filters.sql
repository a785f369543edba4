-- [pool] filter = "auto": the filter each source of a job's pool got (filter_4 where the source
-- has quality flags, filter_0 where it has none) and its eligible segments. Run after eligible.sql.
SELECT e.source, CASE WHEN q.has_quality_flags THEN 'filter_4' ELSE 'filter_0' END AS filter,
       count(*) AS eligible
FROM _eligible e JOIN source_quality_flags q USING (source)
GROUP BY ALL
ORDER BY e.source;
