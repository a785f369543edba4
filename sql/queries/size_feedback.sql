-- [sampling] size_feedback: per COCO area bucket (small, medium, large), the mean AP of that
-- bucket over the job's eligible categories that the feedback named $feedback gives it for
-- (categories with a NULL bucket AP, or not in the feedback, are left out, as COCOeval's
-- summarize() leaves out categories without ground truth of that size), and how many
-- categories each mean covers. Sums are ordered so that their rounding never depends on
-- DuckDB's thread count (the plan draws from these numbers).
WITH covered AS (
    SELECT f.category_id, f.ap_small, f.ap_medium, f.ap_large
    FROM feedback_category_ap f
    SEMI JOIN _eligible e ON e.category_id = f.category_id
    WHERE f.name = $feedback)
SELECT sum(ap_small ORDER BY category_id) / nullif(count(ap_small), 0) AS ap_small,
       sum(ap_medium ORDER BY category_id) / nullif(count(ap_medium), 0) AS ap_medium,
       sum(ap_large ORDER BY category_id) / nullif(count(ap_large), 0) AS ap_large,
       count(ap_small) AS n_small, count(ap_medium) AS n_medium, count(ap_large) AS n_large
FROM covered;
