-- Views the exports and statistics are made of: one set of facts, many formats.
-- Only committed shards are visible (committed_images / committed_annotations).

-- Deterministic train/val/test assignment from a hash of (job, image_id): stable when more
-- shards are added, independent of fingerprints (a re-render keeps its splits). md5, unlike
-- hash(), is stable across DuckDB versions.
CREATE OR REPLACE MACRO split_of(job, image_id, val_fraction, test_fraction) AS
    CASE WHEN (('0x' || md5(job || '/' || image_id::VARCHAR)[1:8])::UBIGINT / 4294967296.0) < test_fraction THEN 'test'
         WHEN (('0x' || md5(job || '/' || image_id::VARCHAR)[1:8])::UBIGINT / 4294967296.0) < test_fraction + val_fraction THEN 'val'
         ELSE 'train' END;

-- image_splits(val, test): every committed image with its split. With stratify = true, a
-- category seen in at least min_images images but absent from val gets its image with the
-- smallest hash moved to val (so every category with enough images appears in val).
CREATE OR REPLACE MACRO image_splits(val_fraction := 0.05, test_fraction := 0.05, stratify := false, min_images := 10) AS TABLE
    WITH base AS (
        SELECT job, fingerprint, image_id, key, split_of(job, image_id, val_fraction, test_fraction) AS split,
               md5(job || '/' || image_id::VARCHAR) AS h
        FROM committed_images),
    cat_images AS (
        SELECT DISTINCT a.fingerprint, a.category_id, b.image_id, b.split, b.h
        FROM committed_annotations a JOIN base b USING (fingerprint, image_id)),
    promote AS (
        SELECT fingerprint, arg_min(image_id, h) AS image_id
        FROM cat_images
        GROUP BY fingerprint, category_id
        HAVING stratify AND count(*) >= min_images AND count(*) FILTER (WHERE split = 'val') = 0)
    SELECT b.job, b.fingerprint, b.image_id, b.key,
           CASE WHEN p.image_id IS NOT NULL THEN 'val' ELSE b.split END AS split
    FROM base b LEFT JOIN (SELECT DISTINCT fingerprint, image_id FROM promote) p USING (fingerprint, image_id);

CREATE OR REPLACE VIEW splits AS SELECT * FROM image_splits();

CREATE OR REPLACE VIEW coco_images AS
    SELECT job, fingerprint, image_id AS id, file_name, width, height, shard_uri, key
    FROM committed_images;

-- Images of a run of any stage, with the composite its shards hold: a compose run's own, or a
-- stage run's (stage_images; runs from before that table keep their input's names) over the images
-- of its compose run, for the shards the run committed.
CREATE OR REPLACE MACRO run_images(run_fingerprint, compose_fingerprint) AS TABLE
    SELECT i.job, i.image_id, i.key, i.width, i.height, coalesce(s.file_name, i.file_name) AS file_name,
           m.shard_uri, i.shard
    FROM committed_images i
    JOIN manifest m ON m.fingerprint = run_fingerprint AND m.shard = i.shard
    LEFT JOIN stage_images s ON s.fingerprint = run_fingerprint AND s.image_id = i.image_id AND s.shard = i.shard
    WHERE i.fingerprint = compose_fingerprint;

-- Annotations with the segment's text as SOC's downstream scripts read it (category_name,
-- sub_category, description, features, short_phrase); pycocotools and panopticapi ignore them.
CREATE OR REPLACE VIEW coco_annotations AS
    SELECT a.job, a.fingerprint, a.ann_id AS id, a.image_id, a.category_id,
           {'size': [i.height, i.width], 'counts': a.rle_counts} AS segmentation,
           a.area, a.bbox, a.iscrowd, c.name AS category_name, a.subcategory AS sub_category, a.description,
           coalesce(a.features, []) AS features, a.short_phrase
    FROM committed_annotations a JOIN committed_images i USING (fingerprint, image_id)
    LEFT JOIN categories c ON c.category_id = a.category_id;

-- Every lake category: ids are lake-wide, so one category list serves every job. Every segment is
-- a thing (an object instance).
CREATE OR REPLACE VIEW coco_categories AS
    SELECT c.category_id AS id, c.name, coalesce(v.supercategory, 'object') AS supercategory, 1 AS isthing
    FROM categories c LEFT JOIN _coco_vocabulary v ON v.name = c.name;

CREATE OR REPLACE VIEW panoptic_annotations AS
    SELECT i.job, i.fingerprint, i.image_id, i.key || '.png' AS file_name,
           list({'id': a.panoptic_id, 'category_id': a.category_id, 'area': a.area, 'bbox': a.bbox,
                 'iscrowd': a.iscrowd, 'category_name': c.name, 'sub_category': a.subcategory,
                 'description': a.description, 'features': coalesce(a.features, []), 'short_phrase': a.short_phrase}
                ORDER BY a.panoptic_id) FILTER (WHERE a.ann_id IS NOT NULL) AS segments_info
    FROM committed_images i LEFT JOIN committed_annotations a USING (fingerprint, image_id)
    LEFT JOIN categories c ON c.category_id = a.category_id
    GROUP BY ALL;

-- Per image: instances with category names, the input of the ODVG (grounding) export.
CREATE OR REPLACE VIEW odvg AS
    SELECT i.job, i.fingerprint, i.image_id, i.file_name, i.width, i.height,
           list({'bbox': a.bbox, 'category_id': a.category_id, 'category': c.name} ORDER BY a.panoptic_id)
               FILTER (WHERE a.ann_id IS NOT NULL) AS instances
    FROM committed_images i
    LEFT JOIN committed_annotations a USING (fingerprint, image_id)
    LEFT JOIN categories c ON c.category_id = a.category_id
    GROUP BY ALL;

-- Per job and category: instances, images, segments used, COCO size buckets (32^2 and 96^2
-- scaled from 640x480 to each image's size), LVIS frequency bucket by image count.
CREATE OR REPLACE VIEW category_stats AS
    WITH inst AS (
        SELECT a.job, a.fingerprint, a.category_id, a.image_id, a.segment_id, a.area,
               i.width * i.height / (640.0 * 480.0) AS s2, a.visible_fraction
        FROM committed_annotations a JOIN committed_images i USING (fingerprint, image_id))
    SELECT job, fingerprint, category_id, c.name AS category,
           count(*) AS instances, count(DISTINCT image_id) AS images, count(DISTINCT segment_id) AS segments_used,
           count(*) FILTER (WHERE area < 1024 * s2) AS small,
           count(*) FILTER (WHERE area >= 1024 * s2 AND area < 9216 * s2) AS medium,
           count(*) FILTER (WHERE area >= 9216 * s2) AS large,
           lvis_frequency(count(DISTINCT image_id)) AS lvis_frequency,
           avg(visible_fraction) AS mean_visible_fraction
    FROM inst JOIN categories c USING (category_id)
    GROUP BY ALL
    ORDER BY job, fingerprint, instances DESC, category_id;
