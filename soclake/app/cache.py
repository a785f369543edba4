"""A small thread-safe LRU cache bounded by bytes (thumbnails, shard member indexes, query
results): the app keeps what it decoded or read in memory, never on disk, never in the lake."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable


class LRU:
    """Least-recently-used entries up to `max_bytes` in all (`size` of a value gives its cost)."""

    def __init__(self, max_bytes: int, size: Callable[[Any], int] = len):
        self.max_bytes, self._size = max_bytes, size
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any) -> Any:
        cost = self._size(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if cost <= self.max_bytes:
                self._items[key] = (value, cost)
                self._bytes += cost
            while self._bytes > self.max_bytes:
                _, (_, c) = self._items.popitem(last=False)
                self._bytes -= c
        return value

    def get_or(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The cached value, else make() (outside the lock: two threads may both make it)."""
        value = self.get(key)
        return value if value is not None else self.put(key, make())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)
