-- Catalogue views: what the pool holds, per category and per source.

-- LVIS frequency bucket of a category from the number of images it appears in (LVIS v1:
-- rare 1-10, common 11-100, frequent > 100). Used by dataset statistics and by sampling.
CREATE OR REPLACE MACRO lvis_frequency(images) AS
    CASE WHEN images <= 10 THEN 'rare' WHEN images <= 100 THEN 'common' ELSE 'frequent' END;

CREATE OR REPLACE VIEW category_counts AS
    SELECT c.category_id, c.name AS category,
           count(s.segment_id) AS segments,
           count(s.segment_id) FILTER (WHERE s.is_instance IS TRUE AND s.integrity IS TRUE
                                         AND s.quality_regularity IS TRUE) AS segments_filter_4,
           count(DISTINCT s.subcategory) AS subcategories,
           count(DISTINCT s.source) AS sources
    FROM categories c LEFT JOIN segments s ON s.category_id = c.category_id AND NOT s.is_distractor
    GROUP BY ALL;

CREATE OR REPLACE VIEW source_summary AS
    WITH seg AS (SELECT source, any_value(layout) AS layout, count(*) AS segments,
                        count(DISTINCT category_id) AS categories, sum(list_sum(list_transform(levels, lambda l: l.length))) AS pack_bytes
                 FROM segments GROUP BY source),
         rej AS (SELECT source, count(*) AS rejects FROM rejects WHERE stage != 'feedback' GROUP BY source),
         bg AS (SELECT source, count(*) AS backgrounds, sum(length) AS bg_bytes FROM backgrounds GROUP BY source)
    SELECT coalesce(seg.source, bg.source, rej.source) AS source, seg.layout,
           coalesce(seg.segments, 0) AS segments, coalesce(seg.categories, 0) AS categories,
           coalesce(bg.backgrounds, 0) AS backgrounds, coalesce(rej.rejects, 0) AS rejects,
           coalesce(seg.pack_bytes, 0) + coalesce(bg.bg_bytes, 0) AS pack_bytes
    FROM seg FULL JOIN bg USING (source) FULL JOIN rej USING (source)
    ORDER BY 1;
