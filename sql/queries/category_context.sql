-- Per eligible category (in category_counts order): its LVIS frequency bucket by distinct
-- source images among the eligible segments (a COCO/LVIS import counts photos, a SOC pool
-- one image per segment), and the AP of the feedback named $feedback (NULL: none).
SELECT e.category_id, lvis_frequency(count(DISTINCT e.source_image)) AS frequency, any_value(f.ap) AS ap
FROM _eligible e
LEFT JOIN feedback_category_ap f ON f.category_id = e.category_id AND f.name = $feedback
GROUP BY e.category_id
ORDER BY e.category_id;
