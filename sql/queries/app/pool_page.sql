-- One page of the app's pool gallery: rows of {view} (segments, filter_0 ... filter_4 or
-- distractors: a checked view name) passing the optional filters of pool_filters.sql,
-- after the keyset cursor ($after_key, $after_id), in the order of (sort key, segment_id).
-- Keyset, not OFFSET: page 10,000 costs what page 1 costs. No levels here: reading that nested
-- column costs more than the rest of the page; thumbnails are found in the app's level index.
WITH rows AS (
    SELECT segment_id, source, category, subcategory, dominant_color, width, height, alpha_area,
           is_distractor,
           CASE $sort WHEN 'largest' THEN -alpha_area WHEN 'smallest' THEN alpha_area ELSE 0 END AS sort_key
    FROM {view}
    {filters}
)
SELECT * FROM rows
WHERE $after_id IS NULL OR sort_key > $after_key OR (sort_key = $after_key AND segment_id > $after_id)
ORDER BY sort_key, segment_id
LIMIT $limit;
