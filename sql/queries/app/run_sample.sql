-- One sample of a run by key: its compose image row, if this run committed its shard.
SELECT i.image_id, i.key, i.shard, i.file_name, i.width, i.height, i.instances, i.planned, i.dropped,
       i.unseen, i.replaced, i.background_id, i.base_id, i.factor, i.factor_value, i.target_id
FROM committed_images i
WHERE i.fingerprint = $compose AND i.key = $key
  AND i.shard IN (SELECT shard FROM manifest WHERE fingerprint = $fingerprint AND stage = $stage);
