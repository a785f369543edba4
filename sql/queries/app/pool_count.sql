-- How many rows of {view} pass the gallery's filters (the same predicate as pool_page.sql).
SELECT count(*) AS segments
FROM {view}
WHERE ($source IS NULL OR source = $source)
  AND ($category IS NULL OR category = $category)
  AND ($subcategory IS NULL OR subcategory = $subcategory)
  AND ($colour IS NULL OR dominant_color = $colour)
  AND ($min_side IS NULL OR greatest(width, height) >= $min_side)
  AND ($max_side IS NULL OR greatest(width, height) <= $max_side)
  AND ($distractor IS NULL OR is_distractor = $distractor);
