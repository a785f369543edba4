"""Shards: the tar codec and member rules (tar), committing, claiming and sweeping shards in a
lake (commit), and the shard index readers use instead of listings (index)."""
