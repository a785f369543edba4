-- The committed shards of one run (a fingerprint and the stage that wrote it).
SELECT shard, shard_uri, samples, bytes, sha256, inputs, code_version
FROM manifest WHERE fingerprint = $fingerprint AND stage = $stage
ORDER BY shard;
