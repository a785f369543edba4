-- Near-duplicates of a batch of new segments, searched at ingest before the batch is written:
-- every earlier segment (the lake's, and the batch's own rows of lower seq) of the same dominant
-- colour whose phash is at most near_duplicate_max_bits() bits away (the hash is of grey
-- levels: the colour gate keeps a red and a blue copy of one shape apart). The batch arrives
-- as the registered table _batch (seq, phash, dominant_color). Candidates share one of the 15 block-pair keys of near_duplicate_keys (the
-- pigeonhole argument is in sql/50_audit.sql), so the lake side is one hash-join probe.
-- Rows: closest first; a tie prefers the lake's segment, then the earliest batch row. A lake
-- match names its group's first member (itself, or the one its near_duplicate names).
WITH b AS (SELECT seq, phash, dominant_color, unnest(near_duplicate_keys(phash)) AS k FROM _batch
           WHERE phash IS NOT NULL),
     lake_side AS (SELECT segment_id, phash, dominant_color,
                          coalesce(near_duplicate, {'of': segment_id, 'bits': NULL::TINYINT, 'source': source,
                                   'source_uri': source_uri, 'category_id': category_id}) AS root,
                          unnest(near_duplicate_keys(phash)) AS k
                   FROM segments WHERE phash IS NOT NULL),
     hits AS (
         SELECT DISTINCT b.seq, NULL::BIGINT AS match_seq, s.segment_id AS match_id, s.root.of AS root,
                s.root.source AS root_source, s.root.source_uri AS root_uri, s.root.category_id AS root_category,
                bit_count(xor(b.phash, s.phash)) AS bits
         FROM b JOIN lake_side s USING (k, dominant_color)
         WHERE bit_count(xor(b.phash, s.phash)) <= near_duplicate_max_bits()
         UNION ALL
         SELECT DISTINCT b.seq, o.seq, NULL, NULL, NULL, NULL, NULL, bit_count(xor(b.phash, o.phash))
         FROM b JOIN b o USING (k, dominant_color)
         WHERE o.seq < b.seq AND bit_count(xor(b.phash, o.phash)) <= near_duplicate_max_bits())
SELECT seq, match_seq, root, root_source, root_uri, root_category, bits FROM hits
ORDER BY seq, bits, match_seq NULLS FIRST, match_id;
