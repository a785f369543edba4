-- Category names for the gallery's category box: those starting with $prefix (any case),
-- most segments first.
SELECT category, segments FROM category_counts
WHERE segments > 0 AND lower(category) LIKE lower($prefix) || '%' ESCAPE '\'
ORDER BY segments DESC, category
LIMIT $limit;
