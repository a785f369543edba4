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

-- ---------------------------------------------------------------------------- rules
-- Each problem the audit counts is one macro (its rule, the thresholds written only here), one
-- view of the labelled segments it flags (SELECT * FROM problem_tiny), and one column of
-- category_audit. Pixel quantities (components, holes, opacity, the perceptual hash) are
-- computed at ingest; rows ingested before a column existed hold NULL there: such a segment
-- is flagged by no rule that needs the column, and category_audit counts it as `unknown`.

-- Near-duplicates: perceptual hashes (64-bit pHash, schemas/segments.json) at most 4 bits apart,
-- and the same dominant colour (the hash sees grey levels only).
-- Re-encoding, rescaling by 0.8 and a +15 brightness shift stay within 4 bits for most crops;
-- unrelated crops are mostly 16-40 bits apart (docs/audit.md has the measurements). pHash distances
-- are even (32 of its 64 bits are set), so 4 means "up to 2 coefficients changed side".
CREATE OR REPLACE MACRO near_duplicate_max_bits() AS 4;
-- Pigeonhole keys for the ingest-time search (sql/queries/near_duplicate_candidates.sql): the
-- hash in 6 blocks of 11, 11, 11, 11, 10, 10 bits (from bit 63). Hashes at most 4 bits apart
-- differ in at most 4 blocks, so they agree on at least 2: they share one of the 15 keys
-- (block pair t, its two blocks). Valid for near_duplicate_max_bits() <= 4.
CREATE OR REPLACE MACRO phash_block(h, i) AS
    (h >> [53, 42, 31, 20, 10, 0][i + 1]) & [2047, 2047, 2047, 2047, 1023, 1023][i + 1];
CREATE OR REPLACE MACRO near_duplicate_keys(h) AS
    list_transform(range(15), lambda t: (t::UBIGINT << 22)
        | (phash_block(h, [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4][t + 1]) << 11)
        | phash_block(h, [1, 2, 3, 4, 5, 2, 3, 4, 5, 3, 4, 5, 4, 5, 5][t + 1]));

-- Many components: the thresholded mask (alpha >= 128) falls into 4 or more 8-connected pieces
-- (specks of a noisy matte, several objects cut out as one).
CREATE OR REPLACE MACRO is_fragmented(alpha_components) AS alpha_components >= 4;
-- Holes: 3 or more transparent regions enclosed by the mask, or holes making up 5% or more of
-- the filled silhouette (a matte eaten away inside; ring-shaped objects show up here by design).
CREATE OR REPLACE MACRO has_holes(alpha_holes, alpha_hole_fraction) AS alpha_holes >= 3 OR alpha_hole_fraction >= 0.05;
-- Faint alpha: the mean opacity of the visible pixels is below 0.6 (a ghostly, half-transparent cut-out).
CREATE OR REPLACE MACRO is_faint(alpha_mean) AS alpha_mean < 0.6;
-- Mostly soft alpha: more than half of the visible pixels are partly transparent (0 < alpha < 255).
CREATE OR REPLACE MACRO is_mostly_soft(soft_edge_fraction) AS soft_edge_fraction > 0.5;
-- Tiny crop: fewer than 32 x 32 = 1024 mask pixels at native resolution (COCO's "small"): it can
-- only be pasted small, or upscaled into blur.
CREATE OR REPLACE MACRO is_tiny(alpha_area) AS alpha_area < 1024;
-- Extreme aspect ratio: the crop's long side is more than 6 times its short side.
CREATE OR REPLACE MACRO is_extreme_aspect(width, height) AS greatest(width, height) > 6 * least(width, height);

-- The problems, their views and rules, in the order the report lists them (the text repeats
-- the macro above it; keep the two together).
CREATE OR REPLACE VIEW audit_rules AS
    SELECT * FROM (VALUES
        ('near_duplicates', 'problem_near_duplicates', 'perceptual hash within 4 bits of an earlier segment of the same dominant colour (a copy in a near-duplicate group)'),
        ('many_components', 'problem_many_components', 'alpha_components >= 4: the mask is in 4 or more pieces'),
        ('holes', 'problem_holes', 'alpha_holes >= 3 or alpha_hole_fraction >= 0.05: holes inside the mask'),
        ('faint_alpha', 'problem_faint_alpha', 'alpha_mean < 0.6: the visible pixels are mostly half-transparent'),
        ('soft_alpha', 'problem_soft_alpha', 'soft_edge_fraction > 0.5: most visible pixels are partly transparent'),
        ('tiny', 'problem_tiny', 'alpha_area < 1024: fewer than 32 x 32 mask pixels'),
        ('extreme_aspect', 'problem_extreme_aspect', 'long side > 6 x short side'))
    AS t(problem, view_name, rule);

CREATE OR REPLACE VIEW problem_near_duplicates AS
    SELECT * FROM filter_0 WHERE near_duplicate IS NOT NULL;
CREATE OR REPLACE VIEW problem_many_components AS
    SELECT * FROM filter_0 WHERE is_fragmented(alpha_components);
CREATE OR REPLACE VIEW problem_holes AS
    SELECT * FROM filter_0 WHERE has_holes(alpha_holes, alpha_hole_fraction);
CREATE OR REPLACE VIEW problem_faint_alpha AS
    SELECT * FROM filter_0 WHERE is_faint(alpha_mean);
CREATE OR REPLACE VIEW problem_soft_alpha AS
    SELECT * FROM filter_0 WHERE is_mostly_soft(soft_edge_fraction);
CREATE OR REPLACE VIEW problem_tiny AS
    SELECT * FROM filter_0 WHERE is_tiny(alpha_area);
CREATE OR REPLACE VIEW problem_extreme_aspect AS
    SELECT * FROM filter_0 WHERE is_extreme_aspect(width, height);

-- Near-duplicate groups, within and across sources (and categories: the same object under two
-- names is a labelling conflict). A group is named by its first-ingested member (`root`); each
-- later member's near_duplicate names it and carries its source, uri and category, so the
-- groups come from the copies' narrow columns alone: no segment id or uri of 20M rows is read.
-- Exact duplicates never get this far: ingest rejects them (duplicate_segments below).
CREATE OR REPLACE VIEW near_duplicate_groups AS
    -- min/max, not DISTINCT counts: these run over every group (the listing counts names)
    SELECT near_duplicate.of AS root, count(*) + 1 AS segments, count(*) AS copies,
           min(source) <> max(source) OR bool_or(source <> near_duplicate.source) AS across_sources,
           min(category_id) <> max(category_id) OR bool_or(category_id <> near_duplicate.category_id)
               AS across_categories,
           max(near_duplicate.bits) AS max_bits,
           any_value(near_duplicate.source) || ':' || any_value(near_duplicate.source_uri) AS first,
           any_value(near_duplicate.source) AS root_source, any_value(near_duplicate.category_id) AS root_category_id
    FROM filter_0 WHERE near_duplicate.bits IS NOT NULL
    GROUP BY near_duplicate.of;

-- The n largest groups, with the names of their sources and categories (named only here: for
-- every group of a 20M-segment pool the names would cost more than the groups).
CREATE OR REPLACE MACRO largest_near_duplicate_groups(n) AS TABLE
    WITH top AS (SELECT * FROM near_duplicate_groups ORDER BY segments DESC, root LIMIT n),
         members AS (SELECT s.near_duplicate.of AS root, s.source, s.category_id FROM filter_0 s
                     SEMI JOIN top ON top.root = s.near_duplicate.of WHERE s.near_duplicate.bits IS NOT NULL
                     UNION SELECT root, root_source, root_category_id FROM top),
         names AS (SELECT root, count(DISTINCT source) AS sources, count(DISTINCT category_id) AS categories,
                          string_agg(DISTINCT source, ', ' ORDER BY source) AS source_names,
                          string_agg(DISTINCT c.name, ', ' ORDER BY c.name) AS category_names
                   FROM members m JOIN categories c USING (category_id) GROUP BY root)
    SELECT top.* EXCLUDE (root_source, root_category_id), names.* EXCLUDE (root)
    FROM top JOIN names USING (root)
    ORDER BY segments DESC, root;

-- Every member of every group, with its own id and uri (reads every segment's id: for looking
-- into a group, e.g. WHERE root = '...').
CREATE OR REPLACE VIEW near_duplicate_members AS
    WITH copies AS (SELECT near_duplicate.of AS root, segment_id, source, source_uri, category_id,
                           near_duplicate.bits AS bits, near_duplicate AS nd
                    FROM filter_0 WHERE near_duplicate IS NOT NULL),
         members AS (
             SELECT root, segment_id, source, source_uri, category_id, bits FROM copies
             UNION ALL
             SELECT DISTINCT root, root, nd.source, nd.source_uri, nd.category_id, 0::TINYINT FROM copies)
    SELECT m.*, c.name AS category FROM members m JOIN categories c USING (category_id);

-- ---------------------------------------------------------------------------- per category
-- Per pool category, one pass over the labelled segments: segments before and after each
-- quality filter (the filters of sql/10_filters.sql), and, over the segments `filter_column`
-- keeps (`kept`), diversity, the problems of audit_rules and the segments whose pixel columns
-- predate this soclake (`unknown`).
-- Diversity: subcategories, distinct short phrases, dominant colours (count, the commonest's
-- share, entropy in bits: 0 = one colour), size spread (standard deviation of ln(longest
-- side): 0 = all one size, 0.69 = a factor-2 spread), distinct looks (kept minus near-duplicate
-- copies).
-- Thin in diversity, whatever the count: 2 or more kept segments, and either half or more of
-- them are near-duplicate copies, or they share one subcategory and one short phrase (or have
-- none), 90% or more one dominant colour and sizes within ~10% (size spread < 0.1).
-- filter_auto ([pool] filter = "auto") keeps a source's segments whole when `unflagged` (the
-- sources without quality flags, source_quality_flags) names it, else as filter_4.
CREATE OR REPLACE MACRO category_audit(filter_column := 'filter_0', unflagged := []::VARCHAR[]) AS TABLE
    -- Each part is its own aggregation over the Parquet parts (NOT MATERIALIZED: no copy of every
    -- segment): DuckDB runs one query mixing DISTINCT counts with these sums several times slower
    -- than the parts apart (benchmarks/audit_20m.py).
    WITH s AS NOT MATERIALIZED (
        SELECT *, CASE filter_column WHEN 'filter_0' THEN true WHEN 'filter_1' THEN is_instance IS TRUE
                      WHEN 'filter_2' THEN integrity IS TRUE WHEN 'filter_3' THEN quality_regularity IS TRUE
                      WHEN 'filter_auto' THEN list_contains(unflagged, source)
                                              OR (is_instance IS TRUE AND integrity IS TRUE AND quality_regularity IS TRUE)
                      ELSE is_instance IS TRUE AND integrity IS TRUE AND quality_regularity IS TRUE END AS kept
        FROM segments WHERE NOT is_distractor),
    agg AS (
        SELECT category_id, count(*) AS segments,
               count(*) FILTER (WHERE is_instance IS TRUE) AS filter_1,
               count(*) FILTER (WHERE integrity IS TRUE) AS filter_2,
               count(*) FILTER (WHERE quality_regularity IS TRUE) AS filter_3,
               count(*) FILTER (WHERE is_instance AND integrity AND quality_regularity) AS filter_4,
               count(*) FILTER (WHERE kept) AS kept,
               avg(greatest(width, height)) FILTER (WHERE kept) AS mean_side,
               stddev_pop(ln(greatest(width, height))) FILTER (WHERE kept) AS size_spread,
               avg(alpha_fraction) FILTER (WHERE kept) AS mean_alpha_fraction,
               avg(soft_edge_fraction) FILTER (WHERE kept) AS mean_soft_edge,
               count(*) FILTER (WHERE kept AND near_duplicate.bits IS NOT NULL) AS near_duplicates,
               count(*) FILTER (WHERE kept AND is_fragmented(alpha_components)) AS many_components,
               count(*) FILTER (WHERE kept AND has_holes(alpha_holes, alpha_hole_fraction)) AS holes,
               count(*) FILTER (WHERE kept AND is_faint(alpha_mean)) AS faint_alpha,
               count(*) FILTER (WHERE kept AND is_mostly_soft(soft_edge_fraction)) AS soft_alpha,
               count(*) FILTER (WHERE kept AND is_tiny(alpha_area)) AS tiny,
               count(*) FILTER (WHERE kept AND is_extreme_aspect(width, height)) AS extreme_aspect,
               count(*) FILTER (WHERE kept AND (phash IS NULL OR alpha_holes IS NULL OR alpha_mean IS NULL)) AS unknown
        FROM s GROUP BY category_id),
    -- distinct values counted through their 64-bit hashes (cheaper to group than the strings; a
    -- collision inside one category is a 2^-64 event)
    subs AS (SELECT category_id, count(*) AS subcategories
             FROM (SELECT DISTINCT category_id, hash(subcategory) FROM s WHERE kept AND subcategory IS NOT NULL)
             GROUP BY category_id),
    phrases AS (SELECT category_id, count(*) AS short_phrases
                FROM (SELECT DISTINCT category_id, hash(short_phrase) FROM s WHERE kept AND short_phrase IS NOT NULL)
                GROUP BY category_id),
    by_colour AS (SELECT category_id, dominant_color, count(*) AS n FROM s WHERE kept GROUP BY ALL),
    colours AS (
        SELECT category_id, count(*) AS colours, arg_max(dominant_color, (n, dominant_color)) AS main_colour,
               max(n) / sum(n) AS main_colour_share, 0.0 - sum(n / t * log2(n / t)) AS colour_entropy
        FROM (SELECT *, sum(n) OVER (PARTITION BY category_id) AS t FROM by_colour) GROUP BY category_id),
    d AS (SELECT * FROM agg LEFT JOIN subs USING (category_id) LEFT JOIN phrases USING (category_id))
    SELECT c.category_id, c.name AS category, coalesce(d.segments, 0) AS segments,
           coalesce(d.filter_1, 0) AS filter_1, coalesce(d.filter_2, 0) AS filter_2,
           coalesce(d.filter_3, 0) AS filter_3, coalesce(d.filter_4, 0) AS filter_4, coalesce(d.kept, 0) AS kept,
           coalesce(d.subcategories, 0) AS subcategories, coalesce(d.short_phrases, 0) AS short_phrases,
           coalesce(k.colours, 0) AS colours, k.main_colour, k.main_colour_share,
           -- sums of floats in parallel: rounded, so that reruns give the same numbers
           round(coalesce(k.colour_entropy, 0.0), 9) AS colour_entropy,
           d.mean_side, round(d.size_spread, 9) AS size_spread, round(d.mean_alpha_fraction, 9) AS mean_alpha_fraction,
           round(d.mean_soft_edge, 9) AS mean_soft_edge,
           coalesce(d.kept, 0) - coalesce(d.near_duplicates, 0) AS distinct_looks,
           coalesce(d.kept >= 2 AND (d.near_duplicates >= 0.5 * d.kept
                    OR (coalesce(d.subcategories, 0) <= 1 AND coalesce(d.short_phrases, 0) <= 1
                        AND k.main_colour_share >= 0.9 AND d.size_spread < 0.1)), false) AS thin_in_diversity,
           coalesce(d.near_duplicates, 0) AS near_duplicates, coalesce(d.many_components, 0) AS many_components,
           coalesce(d.holes, 0) AS holes, coalesce(d.faint_alpha, 0) AS faint_alpha,
           coalesce(d.soft_alpha, 0) AS soft_alpha, coalesce(d.tiny, 0) AS tiny,
           coalesce(d.extreme_aspect, 0) AS extreme_aspect, coalesce(d.unknown, 0) AS unknown
    FROM categories c LEFT JOIN d USING (category_id) LEFT JOIN colours k USING (category_id);

-- The same over every labelled segment (filter_0). `soclake audit` materialises
-- category_audit(its filter) once as a temp table of this name, which the macros below read.
CREATE OR REPLACE VIEW pool_category_audit AS SELECT * FROM category_audit('filter_0');

-- Segments after a filter by longest side, in power-of-two bins (grouped by side first: a few
-- thousand sides, so the logarithms run per side, not per segment).
CREATE OR REPLACE MACRO size_histogram(filter_column := 'filter_0') AS TABLE
    SELECT power(2, floor(log2(side)))::INT AS side, sum(n)::BIGINT AS segments
    FROM (SELECT greatest(width, height) AS side, count(*) AS n FROM query_table(filter_column) GROUP BY 1)
    GROUP BY 1 ORDER BY 1;

-- Over-represented: a category holding more than 3 times the fair share (1 / categories with a
-- kept segment) of the kept segments.
CREATE OR REPLACE MACRO over_represented_factor() AS 3;

-- Per pool category against a vocabulary: status after the filter (thin: fewer than
-- min_segments kept; covered otherwise), the vocabulary names it matches (empty: not in the
-- vocabulary), its share of the kept segments and whether it is over-represented.
CREATE OR REPLACE MACRO pool_coverage(which, min_segments := 10) AS TABLE
    WITH primary_names AS (SELECT vocab_id, name FROM vocabularies WHERE vocab = which AND is_primary),
         matched AS (SELECT k.category_id, list(DISTINCT pn.name ORDER BY pn.name) AS vocab_names
                     FROM category_keys k JOIN vocabularies v ON v.vocab = which AND name_key(v.name) = k.key
                     JOIN primary_names pn USING (vocab_id)
                     GROUP BY k.category_id),
         p AS (SELECT * FROM pool_category_audit WHERE segments > 0),
         tot AS (SELECT sum(kept) AS kept_total, count(*) FILTER (WHERE kept > 0) AS kept_categories FROM p)
    SELECT p.category_id, p.category,
           CASE WHEN p.kept < min_segments THEN 'thin' ELSE 'covered' END AS status,
           coalesce(m.vocab_names, []) AS vocab_names, p.segments, p.kept,
           p.kept / nullif(tot.kept_total, 0) AS share,
           p.kept > over_represented_factor() * tot.kept_total / nullif(tot.kept_categories, 0)
               AND tot.kept_categories >= 3 AS over_represented,
           p.* EXCLUDE (category_id, category, segments, kept)
    FROM p CROSS JOIN tot LEFT JOIN matched m USING (category_id)
    ORDER BY CASE status WHEN 'thin' THEN 0 ELSE 1 END, p.kept, p.category;

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
                                    WHEN 'filter_auto' THEN p.kept ELSE p.filter_4 END), 0)::BIGINT AS filtered,
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
