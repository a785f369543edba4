-- One page of a run's samples for the images grid: the compose run's committed images
-- ($compose) in the shards this run ($fingerprint of $stage) committed, after image $after.
SELECT i.image_id, i.key, i.shard, i.file_name, i.width, i.height, i.instances, i.planned, i.dropped,
       i.unseen, i.replaced, i.base_id, i.factor, i.factor_value
FROM committed_images i
WHERE i.fingerprint = $compose
  AND i.shard IN (SELECT shard FROM manifest WHERE fingerprint = $fingerprint AND stage = $stage)
  AND ($after IS NULL OR i.image_id > $after)
ORDER BY i.image_id
LIMIT $limit;
