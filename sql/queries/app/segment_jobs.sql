-- The job runs that used one segment: planned pastes (plan.objects) and rendered instances
-- (committed annotations), per job and fingerprint.
WITH planned AS (
    SELECT job, fingerprint, count(*) AS planned, count(DISTINCT image_id) AS planned_images
    FROM (SELECT job, fingerprint, image_id, unnest(objects) AS o FROM plan)
    WHERE o.segment_id = $segment_id GROUP BY ALL
), rendered AS (
    SELECT job, fingerprint, count(*) AS instances, min(image_id) AS first_image_id
    FROM committed_annotations WHERE segment_id = $segment_id GROUP BY ALL
)
SELECT coalesce(p.job, r.job) AS job, coalesce(p.fingerprint, r.fingerprint) AS fingerprint,
       coalesce(p.planned, 0) AS planned, coalesce(p.planned_images, 0) AS planned_images,
       coalesce(r.instances, 0) AS instances, r.first_image_id
FROM planned p FULL JOIN rendered r USING (job, fingerprint)
ORDER BY job, fingerprint;
