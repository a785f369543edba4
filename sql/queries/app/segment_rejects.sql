-- Rejects about one segment: items of its source file (metadata and quality entries ignored,
-- other instances of the same image) and duplicates of it dropped at ingest (their detail
-- names the kept segment's id in parentheses).
SELECT source, layout, stage, source_uri, reason, detail, ingest_run FROM rejects
WHERE (source = $source AND split_part(source_uri, '#', 1) = split_part($source_uri, '#', 1))
   OR (reason = 'duplicate' AND detail LIKE '%(' || $segment_id || ')')
ORDER BY reason, source_uri;
