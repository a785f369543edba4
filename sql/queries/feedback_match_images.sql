-- Loss rows of a feedback file (registered as _feedback_images: i, job, fingerprint,
-- image_id) with whether the lake has that committed image.
SELECT r.i, i.image_id IS NOT NULL AS matched
FROM _feedback_images r
LEFT JOIN committed_images i ON i.job = r.job AND i.fingerprint = r.fingerprint AND i.image_id = r.image_id
ORDER BY r.i;
