-- Turn drawn (category_id, rank) pairs into segments with the sizes the layouts need.
SELECT d.i, e.segment_id, e.width, e.height, e.alpha_fraction, f.segment_id AS fallback_id
FROM _draws d
JOIN _eligible e ON e.category_id = d.category_id AND e.rank = d.rank
JOIN _eligible f ON f.category_id = d.category_id AND f.rank = d.fallback_rank
ORDER BY d.i;
