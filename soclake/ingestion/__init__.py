"""Ingest: source layouts (one module each, see ingest/layouts.py) feeding one engine that writes
segments, backgrounds, categories and rejects."""
from __future__ import annotations

from soclake.ingestion.engine import run as ingest
from soclake.ingestion.layouts import LAYOUTS

__all__ = ["ingest", "LAYOUTS"]
