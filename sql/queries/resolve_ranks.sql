-- Turn drawn (category_id, rank) pairs into segments with the sizes the layouts need. The
-- ranks of the drawn categories are computed once (materialised) for both joins.
WITH e AS MATERIALIZED (
    SELECT category_id, rank, segment_id, width, height, alpha_fraction FROM _eligible
    WHERE category_id IN (SELECT category_id FROM _draws)
)
SELECT d.i, e.segment_id, e.width, e.height, e.alpha_fraction, f.segment_id AS fallback_id
FROM _draws d
JOIN e ON e.category_id = d.category_id AND e.rank = d.rank
JOIN e f ON f.category_id = d.category_id AND f.rank = d.fallback_rank
ORDER BY d.i;
