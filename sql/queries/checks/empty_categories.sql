-- Categories no segment belongs to: what an ingest killed between its categories part and
-- its segments part leaves (soclake verify lists them).
SELECT category_id, name, first_source
FROM categories c
WHERE NOT EXISTS (SELECT 1 FROM segments s WHERE s.category_id = c.category_id)
ORDER BY category_id;
