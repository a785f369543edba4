"""The lake layer: a root URI with Parquet tables, segment packs and SQL views over them
(lake), table schemas, named SQL files, and the catalog of jobs, fingerprints and paths."""
from soclake.lake.lake import Lake

__all__ = ["Lake"]
