"""Locates the repository's data folders (sql/, schemas/, jobs/) in a checkout or a wheel.

A wheel carries them under soclake/_data/; an editable install reads them from the repo root.
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder `name` (sql, schemas or jobs) shipped with this installation."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"soclake data folder {name!r} not found next to {_PACKAGE}; reinstall soclake")


def package_data(name: str) -> Path:
    """Return a file from soclake/data/ (vocabularies, palettes)."""
    return _PACKAGE / "data" / name
