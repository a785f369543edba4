-- Category-coverage audit: the pool and the composed datasets against a vocabulary.
-- Vocabularies: `vocabularies` (vocab, vocab_id, name, is_primary) holds the shipped COCO and
-- LVIS v1 lists and, during `soclake audit`, the audited list with its synonyms as vocab
-- 'user' (a synonym is a row with the same vocab_id and is_primary = false).

-- Matching key: lower case, '_' and runs of spaces folded, parenthetical qualifiers dropped
-- ("bat_(animal)" -> "bat"), and a simple plural folded on the last word.
CREATE OR REPLACE MACRO name_base(name) AS
    trim(regexp_replace(regexp_replace(lower(replace(name, '_', ' ')), '\s*\([^)]*\)', '', 'g'), '\s+', ' ', 'g'));
CREATE OR REPLACE MACRO singular(s) AS
    CASE WHEN s LIKE '%ies' AND length(s) > 4 THEN s[:-4] || 'y'
         WHEN regexp_matches(s, '(ss|x|z|ch|sh)es$') THEN s[:-3]
         WHEN s LIKE '%s' AND s NOT LIKE '%ss' AND s NOT LIKE '%us' AND s NOT LIKE '%is' AND length(s) > 3 THEN s[:-2]
         ELSE s END;
CREATE OR REPLACE MACRO name_key(name) AS singular(name_base(name));

CREATE OR REPLACE VIEW vocabularies AS
    SELECT 'coco' AS vocab, id AS vocab_id, name, true AS is_primary FROM _coco_vocabulary
    UNION ALL SELECT 'lvis', vocab_id, name, true FROM _lvis_vocabulary
    UNION ALL SELECT 'user', vocab_id, name, is_primary FROM _user_vocabulary;

-- Pool categories with their matching keys (their synonyms match too).
CREATE OR REPLACE VIEW category_keys AS
    SELECT category_id, name, name_key(name) AS key FROM categories
    UNION SELECT category_id, name, name_key(unnest(synonyms)) FROM categories;

-- Per pool category: segments before and after each quality filter, attribute diversity,
-- colours, sizes and alpha statistics. One pass over segments; `soclake audit` materialises
-- it once as a temp table of the same name, which the macros below then read.
CREATE OR REPLACE VIEW pool_category_audit AS
    WITH agg AS (
        SELECT category_id, count(*) AS segments,
               count(*) FILTER (WHERE is_instance IS TRUE) AS filter_1,
               count(*) FILTER (WHERE integrity IS TRUE) AS filter_2,
               count(*) FILTER (WHERE quality_regularity IS TRUE) AS filter_3,
               count(*) FILTER (WHERE is_instance AND integrity AND quality_regularity) AS filter_4,
               count(DISTINCT subcategory) AS subcategories,
               count(DISTINCT short_phrase) AS short_phrases,
               count(DISTINCT dominant_color) AS colours,
               mode(dominant_color) AS main_colour,
               avg(greatest(width, height)) AS mean_side,
               avg(alpha_fraction) AS mean_alpha_fraction,
               avg(soft_edge_fraction) AS mean_soft_edge
        FROM segments WHERE NOT is_distractor GROUP BY category_id)
    SELECT c.category_id, c.name AS category, coalesce(a.segments, 0) AS segments,
           coalesce(a.filter_1, 0) AS filter_1, coalesce(a.filter_2, 0) AS filter_2,
           coalesce(a.filter_3, 0) AS filter_3, coalesce(a.filter_4, 0) AS filter_4,
           coalesce(a.subcategories, 0) AS subcategories, coalesce(a.short_phrases, 0) AS short_phrases,
           coalesce(a.colours, 0) AS colours, a.main_colour, a.mean_side, a.mean_alpha_fraction, a.mean_soft_edge
    FROM categories c LEFT JOIN agg a USING (category_id);

-- Vocabulary coverage: each vocabulary name, the pool categories matching it, their segments
-- and a status (missing: no segment; thin: fewer than min_segments after the chosen filter).
CREATE OR REPLACE MACRO vocab_coverage(which, min_segments := 10, filter_column := 'filter_4') AS TABLE
    WITH v AS (SELECT vocab_id, name, is_primary, name_key(name) AS key FROM vocabularies WHERE vocab = which),
         names AS (SELECT vocab_id, any_value(name) FILTER (WHERE is_primary) AS name FROM v GROUP BY vocab_id),
         hits AS (SELECT DISTINCT v.vocab_id, k.category_id FROM v JOIN category_keys k ON k.key = v.key),
         n AS (SELECT names.vocab_id, names.name,
                      list(h.category_id ORDER BY h.category_id) FILTER (WHERE h.category_id IS NOT NULL) AS categories,
                      coalesce(sum(p.segments), 0)::BIGINT AS segments,
                      coalesce(sum(CASE filter_column WHEN 'filter_0' THEN p.segments WHEN 'filter_1' THEN p.filter_1
                                    WHEN 'filter_2' THEN p.filter_2 WHEN 'filter_3' THEN p.filter_3
                                    ELSE p.filter_4 END), 0)::BIGINT AS filtered,
                      coalesce(sum(p.subcategories), 0)::BIGINT AS subcategories
               FROM names LEFT JOIN hits h USING (vocab_id) LEFT JOIN pool_category_audit p USING (category_id)
               GROUP BY names.vocab_id, names.name)
    SELECT vocab_id, name, coalesce(categories, []) AS categories, segments, filtered AS segments_filtered,
           subcategories,
           CASE WHEN segments = 0 THEN 'missing' WHEN filtered < min_segments THEN 'thin' ELSE 'covered' END AS status
    FROM n ORDER BY CASE status WHEN 'missing' THEN 0 WHEN 'thin' THEN 1 ELSE 2 END, filtered, vocab_id;

-- Pool categories that match no name of a vocabulary.
CREATE OR REPLACE MACRO unmatched_categories(which) AS TABLE
    SELECT p.category_id, p.category, p.segments FROM pool_category_audit p
    WHERE p.category_id NOT IN (SELECT k.category_id FROM category_keys k
                                JOIN vocabularies v ON v.vocab = which AND name_key(v.name) = k.key)
    ORDER BY p.segments DESC, p.category;

-- Quality-filter funnel over the whole pool (labelled segments passing each filter).
CREATE OR REPLACE VIEW quality_funnel AS
    SELECT 'filter_0' AS filter, sum(segments)::BIGINT AS segments FROM pool_category_audit
    UNION ALL SELECT 'filter_1', sum(filter_1)::BIGINT FROM pool_category_audit
    UNION ALL SELECT 'filter_2', sum(filter_2)::BIGINT FROM pool_category_audit
    UNION ALL SELECT 'filter_3', sum(filter_3)::BIGINT FROM pool_category_audit
    UNION ALL SELECT 'filter_4', sum(filter_4)::BIGINT FROM pool_category_audit;

-- Duplicates found by content hash at ingest (the second copy is a reject naming the first).
CREATE OR REPLACE VIEW duplicate_segments AS
    SELECT source, source_uri, detail FROM rejects WHERE reason = 'duplicate';

-- Dataset side (per job fingerprint): co-occurring category pairs, visibility histogram,
-- planned vs rendered instances per category.
CREATE OR REPLACE VIEW category_pairs AS
    SELECT a.fingerprint, a.category_id AS category_a, b.category_id AS category_b, count(DISTINCT a.image_id) AS images
    FROM (SELECT DISTINCT fingerprint, image_id, category_id FROM committed_annotations) a
    JOIN (SELECT DISTINCT fingerprint, image_id, category_id FROM committed_annotations) b
      ON a.fingerprint = b.fingerprint AND a.image_id = b.image_id AND a.category_id < b.category_id
    GROUP BY ALL;

CREATE OR REPLACE VIEW visibility_histogram AS
    SELECT fingerprint, least(floor(visible_fraction * 10), 9)::INT / 10.0 AS bin_start, count(*) AS instances
    FROM committed_annotations GROUP BY ALL ORDER BY fingerprint, bin_start;

CREATE OR REPLACE VIEW planned_vs_rendered AS
    WITH planned AS (SELECT p.fingerprint, o.category_id, count(*) AS planned
                     FROM (SELECT fingerprint, shard, unnest(objects) AS o FROM plan) p
                     SEMI JOIN manifest m ON m.fingerprint = p.fingerprint AND m.shard = p.shard AND m.stage = 'compose'
                     WHERE o.role = 'object' GROUP BY ALL),
         rendered AS (SELECT fingerprint, category_id, count(*) AS rendered FROM committed_annotations GROUP BY ALL)
    SELECT fingerprint, category_id, planned, coalesce(rendered, 0) AS rendered, planned - coalesce(rendered, 0) AS lost
    FROM planned LEFT JOIN rendered USING (fingerprint, category_id)
    ORDER BY fingerprint, lost DESC, category_id;

-- Per planned job and category: the share of planned object slots against the share the
-- sampling strategy aimed for, the uniform-segment (SOC) and temperature shares, and the
-- feedback AP it read. boost = planned share / temperature share (1: no shift).
CREATE OR REPLACE VIEW sampling_shift AS
    WITH planned AS (SELECT fingerprint, o.category_id, count(*) AS planned
                     FROM (SELECT fingerprint, unnest(objects) AS o FROM plan)
                     WHERE o.role = 'object' GROUP BY ALL)
    SELECT w.job, w.fingerprint, w.category_id, c.name AS category, w.eligible, w.frequency,
           w.feedback_ap, w.ap_used, coalesce(p.planned, 0) AS planned,
           coalesce(p.planned, 0) / sum(coalesce(p.planned, 0)) OVER (PARTITION BY w.fingerprint) AS planned_share,
           w.share AS target_share, w.uniform_share, w.temperature_share,
           planned_share / w.temperature_share AS boost
    FROM sampling_weights w
    LEFT JOIN planned p USING (fingerprint, category_id)
    JOIN categories c USING (category_id)
    ORDER BY w.fingerprint, boost DESC, w.category_id;
