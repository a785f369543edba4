-- The gallery's filters (a NULL parameter means any), shared by pool_page.sql and
-- pool_count.sql (substituted where they name it).
WHERE ($source IS NULL OR source = $source)
  AND ($category IS NULL OR category = $category)
  AND ($subcategory IS NULL OR subcategory = $subcategory)
  AND ($colour IS NULL OR dominant_color = $colour)
  AND ($min_side IS NULL OR greatest(width, height) >= $min_side)
  AND ($max_side IS NULL OR greatest(width, height) <= $max_side)
  AND ($distractor IS NULL OR is_distractor = $distractor)
