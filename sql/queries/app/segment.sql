-- Everything the segments table knows about one segment, with its category row.
SELECT s.*, c.synonyms AS category_synonyms, c.coco_id, c.lvis_id, c.frequency AS lvis_frequency, c.synset
FROM segments s LEFT JOIN categories c USING (category_id)
WHERE s.segment_id = $segment_id;
