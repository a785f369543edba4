-- Eligible segments per category (and per subcategory, for single-category mode).
SELECT category_id, sum(sub_n)::BIGINT AS n,
       list(sub_n ORDER BY subcategory NULLS FIRST) AS sub_counts
FROM (SELECT category_id, subcategory, count(*) AS sub_n FROM _eligible GROUP BY ALL)
GROUP BY category_id
ORDER BY category_id;
