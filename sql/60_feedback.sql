-- Feedback from training runs (`soclake feedback`): per-category AP from an evaluation, or
-- per-image losses of a composed job. Every load is kept; the newest load of a name is current.
CREATE OR REPLACE VIEW feedback_current AS
    SELECT f.* FROM feedback f
    SEMI JOIN (SELECT name, max(load_id) AS load_id FROM feedback GROUP BY name) l
        ON l.name = f.name AND l.load_id = f.load_id;

-- One row per current feedback name: what it holds and where it came from.
CREATE OR REPLACE VIEW feedback_loads AS
    SELECT name, any_value(kind) AS kind, any_value(load_id) AS load_id, any_value(loaded_at) AS loaded_at,
           any_value(file) AS file, count(*) AS rows, count(DISTINCT category_id) AS categories,
           count(DISTINCT image_id) AS images, list(DISTINCT metric ORDER BY metric) AS metrics
    FROM feedback_current GROUP BY name ORDER BY name;

-- Per-image losses as per-category hardness: the mean loss of the committed images of the
-- job that contain the category. The sum is ordered so that its rounding never depends on
-- DuckDB's thread count (job fingerprints hash these numbers).
CREATE OR REPLACE VIEW feedback_loss_by_category AS
    WITH loss AS (SELECT name, fingerprint, image_id, value FROM feedback_current
                  WHERE kind = 'image_loss' AND metric = 'loss'),
         present AS (SELECT DISTINCT fingerprint, image_id, category_id FROM committed_annotations)
    SELECT l.name, p.category_id, count(*) AS images,
           sum(l.value ORDER BY l.fingerprint, l.image_id) / count(*) AS mean_loss
    FROM loss l JOIN present p USING (fingerprint, image_id)
    GROUP BY l.name, p.category_id;

-- Per feedback name and category: an AP in [0, 1] (1 - AP is the hardness the `hardness`
-- sampling strategy weights by). category_ap feedback gives it directly; image_loss feedback
-- maps the mean loss to 1 - mean_loss / (largest mean loss of the feedback's categories).
CREATE OR REPLACE VIEW feedback_category_ap AS
    SELECT name, category_id, 'category_ap' AS kind,
           any_value(value) FILTER (WHERE metric = 'ap') AS ap,
           any_value(value) FILTER (WHERE metric = 'ap_small') AS ap_small,
           any_value(value) FILTER (WHERE metric = 'ap_medium') AS ap_medium,
           any_value(value) FILTER (WHERE metric = 'ap_large') AS ap_large,
           NULL::DOUBLE AS mean_loss, NULL::BIGINT AS images
    FROM feedback_current WHERE kind = 'category_ap' GROUP BY name, category_id
    UNION ALL
    SELECT name, category_id, 'image_loss',
           coalesce(1 - mean_loss / nullif(max(mean_loss) OVER (PARTITION BY name), 0), 1.0),
           NULL, NULL, NULL, mean_loss, images
    FROM feedback_loss_by_category;
