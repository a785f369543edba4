-- Content digest of one part of the backgrounds table (see pool_digest_segments.sql): rows
-- without their pack, offset, length and ingest run.
SELECT count(*) AS n, coalesce(sum((m & 18446744073709551615::UHUGEINT)::UBIGINT), 0)::VARCHAR AS lower,
       coalesce(sum((m >> 64)::UBIGINT), 0)::VARCHAR AS upper
FROM (SELECT md5_number(to_json(r)) AS m
      FROM (SELECT COLUMNS(lambda c: c NOT IN ('pack', 'offset', 'length', 'ingest_run')) FROM read_parquet($part)) r);
