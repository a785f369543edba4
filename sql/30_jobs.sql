-- Job outputs as readers see them: only shards committed by a manifest row exist.
CREATE OR REPLACE VIEW committed_images AS
    SELECT i.* FROM images i
    SEMI JOIN manifest m ON m.fingerprint = i.fingerprint AND m.shard = i.shard AND m.stage = 'compose';

CREATE OR REPLACE VIEW committed_annotations AS
    SELECT a.* FROM annotations a
    SEMI JOIN committed_images i ON i.fingerprint = a.fingerprint AND i.image_id = a.image_id;

-- Per job and fingerprint: shards planned vs committed.
CREATE OR REPLACE VIEW job_status AS
    WITH planned AS (SELECT job, fingerprint, count(DISTINCT shard) AS shards, count(*) AS images,
                            sum(len(list_filter(objects, lambda o: o.role = 'object'))) AS planned_objects
                     FROM plan GROUP BY ALL),
         done AS (SELECT fingerprint, count(*) AS shards_committed, sum(samples) AS images_committed,
                         sum(bytes) AS bytes FROM manifest WHERE stage = 'compose' GROUP BY ALL)
    SELECT p.job, 'compose' AS stage, p.fingerprint, p.images, p.shards, coalesce(d.shards_committed, 0) AS shards_committed,
           coalesce(d.images_committed, 0) AS images_committed, coalesce(d.bytes, 0) AS bytes,
           p.planned_objects,
           CASE WHEN coalesce(d.shards_committed, 0) = p.shards THEN 'complete'
                WHEN coalesce(d.shards_committed, 0) = 0 THEN 'planned' ELSE 'partial' END AS state
    FROM planned p LEFT JOIN done d USING (fingerprint)
    UNION ALL
    -- shard-in/shard-out stages (relight, refexp): what their manifests committed
    SELECT job, stage, fingerprint, sum(samples)::BIGINT, count(*), count(*), sum(samples)::BIGINT, sum(bytes)::BIGINT,
           NULL, 'committed'
    FROM manifest WHERE stage != 'compose' GROUP BY ALL
    UNION ALL
    -- compose-stage runs without a plan: jobs imported from another tool's output (ingest soc-output)
    SELECT job, stage, fingerprint, sum(samples)::BIGINT, count(*), count(*), sum(samples)::BIGINT, sum(bytes)::BIGINT,
           NULL, 'imported'
    FROM manifest WHERE stage = 'compose' AND fingerprint NOT IN (SELECT DISTINCT fingerprint FROM plan) GROUP BY ALL
    ORDER BY 1, 3;
