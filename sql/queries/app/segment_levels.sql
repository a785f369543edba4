-- The pyramid levels of some segments (the thumbnail endpoint's lookup on a cache miss).
SELECT segment_id, levels FROM segments WHERE segment_id IN (SELECT unnest($ids));
