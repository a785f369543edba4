-- Content digest of one part of the segments table: its row count and the sums of the two
-- 64-bit halves of each row's md5 (the row as JSON, leaving out where its pixels sit, i.e.
-- pack, offset and length of each level, how the levels are encoded (codec: webp and zstd
-- levels compose into the same pixels), and which ingest run wrote it). Sums add up over
-- parts, so the pool's digest does not depend on how rows are split into parts, on the
-- parts' names or on row order (soclake/snapshot.py).
SELECT count(*) AS n, coalesce(sum((m & 18446744073709551615::UHUGEINT)::UBIGINT), 0)::VARCHAR AS lower,
       coalesce(sum((m >> 64)::UBIGINT), 0)::VARCHAR AS upper
FROM (SELECT md5_number(to_json(r)) AS m
      FROM (SELECT COLUMNS(lambda c: c NOT IN ('levels', 'codec', 'ingest_run')),
                   list_transform(levels, lambda l: struct_pack(side := l.side, width := l.width, height := l.height))
                       AS levels
            FROM read_parquet($part)) r);
