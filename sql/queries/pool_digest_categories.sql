-- Content digest of one part of the categories table (see pool_digest_segments.sql): whole rows.
SELECT count(*) AS n, coalesce(sum((m & 18446744073709551615::UHUGEINT)::UBIGINT), 0)::VARCHAR AS lower,
       coalesce(sum((m >> 64)::UBIGINT), 0)::VARCHAR AS upper
FROM (SELECT md5_number(to_json(r)) AS m FROM (SELECT * FROM read_parquet($part)) r);
