-- The pool's categories with segments, most segments first: the gallery's category box
-- suggests from this list (read once until the lake changes; filtered by prefix in the app).
SELECT category, segments FROM category_counts
WHERE segments > 0
ORDER BY segments DESC, category;
