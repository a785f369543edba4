-- The pool a compose job reads, from content only: every row of segments, backgrounds and
-- categories as JSON, leaving out where its bytes sit (pack, offset, length) and which ingest
-- run wrote it. Rows are hashed one by one and the hashes sorted, so neither the table
-- parts, their names nor the order rows were written in count; only what they hold.
WITH rows AS (
    SELECT 'segments' AS tbl, md5(to_json(s)) AS h
    FROM (SELECT * EXCLUDE (levels, ingest_run),
                 list_transform(levels, lambda l: struct_pack(side := l.side, width := l.width, height := l.height)) AS levels
          FROM segments) s
    UNION ALL
    SELECT 'backgrounds', md5(to_json(b)) FROM (SELECT * EXCLUDE (pack, "offset", length, ingest_run) FROM backgrounds) b
    UNION ALL
    SELECT 'categories', md5(to_json(c)) FROM (SELECT * FROM categories) c
)
SELECT t.tbl, count(rows.h) AS n, md5(coalesce(string_agg(rows.h, '' ORDER BY rows.h), '')) AS digest
FROM (VALUES ('segments'), ('backgrounds'), ('categories')) t(tbl) LEFT JOIN rows USING (tbl)
GROUP BY t.tbl
ORDER BY t.tbl;
