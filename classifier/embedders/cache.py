"""An on-disk embedding cache keyed by (model id, text kind, text hash), so unchanged texts are never re-embedded."""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Generator, Sequence

import numpy as np

from ..text import content_hash
from .base import Embedder, TextKind


# Part of every key. 2: vectors are pooled by each chunk's explicit owner. Before, a text with no chunk could shift
# vectors between the texts of one batch, so entries written under format 1 may be wrong and are never read.
KEY_FORMAT = 2


class EmbeddingCache:
    """SQLite file (WAL), one row per vector; a small in-memory LRU in front of it."""

    def __init__(self, path: str | Path | None, memory_items: int = 4096):
        self.path = Path(path) if path else None
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memory_items = memory_items
        self._lock = threading.Lock()
        self._conn = None
        self.hits = 0
        self.misses = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
            self._conn.execute("CREATE TABLE IF NOT EXISTS token_counts (key TEXT PRIMARY KEY, n INTEGER NOT NULL)")
            self._conn.commit()
        self._counts: OrderedDict[str, int] = OrderedDict()

    @staticmethod
    def key(model_id: str, kind: TextKind, text: str) -> str:
        return content_hash(f"{KEY_FORMAT}\x00{model_id}\x00{TextKind(kind).value}\x00{text}")

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return self._get("vectors", "vec", self._memory, keys, lambda blob: np.frombuffer(blob, dtype=np.float32))

    def put_many(self, items: dict[str, np.ndarray]):
        self._put("vectors", "vec", self._memory, items, lambda v: np.asarray(v, dtype=np.float32).tobytes())

    def get_counts(self, keys: Sequence[str]) -> dict[str, int]:
        """Token counts stored for these keys (the same keys as the vectors)."""
        return self._get("token_counts", "n", self._counts, keys, int)

    def put_counts(self, items: dict[str, int]):
        self._put("token_counts", "n", self._counts, items, int)

    def _get(self, table: str, column: str, memory: OrderedDict, keys: Sequence[str], decode) -> dict:
        """Values of ``keys`` found in memory, then in the table (500 keys a query); found ones are remembered."""
        found: dict = {}
        with self._lock:
            missing = []
            for k in keys:
                if k in memory:
                    memory.move_to_end(k)
                    found[k] = memory[k]
                else:
                    missing.append(k)
            if missing and self._conn is not None:
                for start in range(0, len(missing), 500):
                    part = missing[start : start + 500]
                    rows = self._conn.execute(f"SELECT key, {column} FROM {table} WHERE key IN "
                                              f"({','.join('?' * len(part))})", part).fetchall()
                    for k, value in rows:
                        found[k] = decode(value)
                        self._remember(memory, k, found[k])
        return found

    def _put(self, table: str, column: str, memory: OrderedDict, items: dict, encode):
        with self._lock:
            for k, value in items.items():
                self._remember(memory, k, value)
            if self._conn is not None and items:
                self._conn.executemany(f"INSERT OR REPLACE INTO {table} (key, {column}) VALUES (?, ?)",
                                       [(k, encode(v)) for k, v in items.items()])
                self._conn.commit()

    def _remember(self, memory: OrderedDict, key: str, value):
        memory[key] = value
        memory.move_to_end(key)
        while len(memory) > self._memory_items:
            memory.popitem(last=False)

    def reopen_after_fork(self):
        """In a forked child: a connection of its own. The inherited one is kept, unused and never closed (closing
        it here could disturb the parent's use of the same database files)."""
        self._inherited = getattr(self, "_inherited", []) + [self._conn]
        self._lock = threading.Lock()
        self._conn = None
        if self.path is not None:
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA synchronous=NORMAL")

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class CachedEmbedder(Embedder):
    """Wraps an embedder; only texts the cache has not seen reach the model (deduplicated, in one batch)."""

    def __init__(self, inner: Embedder, cache: EmbeddingCache):
        self.inner = inner
        self.cache = cache
        self.id = inner.id

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.inner.dim

    @property
    def max_tokens(self) -> int | None:
        return getattr(self.inner, "max_tokens", None)

    @property
    def device(self) -> str | None:
        """Where the inner embedder runs (``"cpu"``, ``"cuda"``), when it says."""
        return getattr(self.inner, "device", None)

    def token_counts(self, texts: Sequence[str], kind: TextKind = TextKind.PASSAGE) -> list[int]:
        """The inner embedder's token counts, remembered in the cache beside the vectors."""
        texts = list(texts)
        keys = [self.cache.key(self.id, kind, t) for t in texts]
        found = self.cache.get_counts(list(dict.fromkeys(keys)))
        todo = {k: t for k, t in zip(keys, texts) if k not in found}
        if todo:
            new = dict(zip(todo, self.inner.token_counts(list(todo.values()), kind)))
            self.cache.put_counts(new)
            found.update(new)
        return [found[k] for k in keys]

    def encode_steps(self, text: str, kind: TextKind = TextKind.PASSAGE,
                     pieces_per_step: int = 2) -> Generator[None, None, None]:
        """Embed a long text a few chunks per step (see ``ChunkingEmbedder.encode_steps``) into the cache, so that
        a later ``encode`` of it is a cache hit; nothing to do when the cache has it or the inner embedder cannot
        work in steps."""
        key = self.cache.key(self.id, kind, text)
        steps = getattr(self.inner, "encode_steps", None)
        if steps is None or self.cache.get_many([key]):
            return
        vector = yield from steps(text, kind, pieces_per_step)
        self.cache.misses += 1
        self.cache.put_many({key: np.asarray(vector, dtype=np.float32)})

    def encode(self, texts: Sequence[str], kind: TextKind = TextKind.PASSAGE, *, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        keys = [self.cache.key(self.id, kind, t) for t in texts]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        todo = list(dict.fromkeys(k for k in keys if k not in found))
        self.cache.hits += len(texts) - sum(k not in found for k in keys)
        self.cache.misses += len(todo)
        if todo:
            first_text = {}
            for k, t in zip(keys, texts):
                first_text.setdefault(k, t)
            vectors = self.inner.encode([first_text[k] for k in todo], kind, progress=progress)
            new = dict(zip(todo, vectors))
            self.cache.put_many(new)
            found.update(new)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
