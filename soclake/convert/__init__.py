"""Converters between outside dataset formats and soclake shards (COCO to shards)."""
