"""Registries: a name -> an implementation, imported only when it is first used (as fsspec's
known_implementations are), with the extra to install when an optional dependency is missing.
One helper serves executors, stages, relight backends, ingest layouts, box layouts, blend modes
and sampling strategies; CLI choices and "unknown name" errors come from it.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Iterator

from soclake.errors import SoclakeError, did_you_mean


class Registry:
    """Names of one kind of implementation. An entry is an object, or "module" / "module:attr"
    imported when it is first asked for; `extras` names the pip extra a lazy entry needs."""

    def __init__(self, kind: str, entries: dict[str, Any] | None = None, extras: dict[str, str] | None = None):
        self.kind = kind
        self._entries: dict[str, Any] = dict(entries or {})
        self._extras = dict(extras or {})
        self._loaded: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator: register the decorated object under `name`."""
        def add(obj: Any) -> Any:
            self._entries[name] = obj
            return obj
        return add

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def check(self, name: str, where: str = "") -> str:
        """`name`, or an error naming the known ones and the closest."""
        if name not in self._entries:
            prefix = f"{where}: " if where else ""
            raise SoclakeError(f"{prefix}unknown {self.kind} {name!r}" + did_you_mean(name, self.names(), self.kind + "s"))
        return name

    def get(self, name: str, where: str = "") -> Any:
        """The implementation registered as `name` (imported on first use)."""
        entry = self._entries[self.check(name, where)]
        if not isinstance(entry, str):
            return entry
        if name not in self._loaded:
            module, _, attr = entry.partition(":")
            try:
                obj = importlib.import_module(module)
            except ImportError as e:
                extra = self._extras.get(name)
                if extra is None:
                    raise
                raise SoclakeError(f"the {self.kind} {name!r} needs {e.name or 'an optional dependency'}: "
                                   f"pip install 'soclake[{extra}]'") from None
            self._loaded[name] = getattr(obj, attr) if attr else obj
        return self._loaded[name]
