"""The sentence-transformers engine, with long texts split into chunks and pooled, never cut."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from ..text import split_sentences, words
from .base import Embedder, TextKind


class EmbedderError(RuntimeError):
    """The embedding model cannot be found or loaded."""


def _read_prefixes(folder: Path) -> dict[str, str]:
    marker = folder / "laari_rebuild.json"
    if marker.exists():
        return json.loads(marker.read_text()).get("prefixes", {})
    st_config = folder / "config_sentence_transformers.json"
    if st_config.exists():
        prompts = json.loads(st_config.read_text()).get("prompts") or {}
        return {k: v for k, v in prompts.items() if k in ("query", "passage")}
    return {}


def _embedding_dimension(model) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def folder_id(folder: Path) -> str:
    """A stable identity for a model folder: its name and a hash of its configuration and weight sizes."""
    h = hashlib.sha256()
    for name in sorted(p.name for p in folder.iterdir() if p.is_file()):
        path = folder / name
        h.update(name.encode())
        if path.suffix in (".json", ".txt"):
            h.update(path.read_bytes())
        else:
            h.update(str(path.stat().st_size).encode())
    return f"{folder.name}@{h.hexdigest()[:12]}"


def pool_chunks(vectors: np.ndarray, owners: Sequence[int], n: int, weights: Sequence[int] | None) -> np.ndarray:
    """One unit vector per text from its chunks' vectors (weighted by ``weights``, e.g. tokens), aligned by the
    explicit owner index of each chunk; every text must own at least one chunk."""
    owners = np.asarray(owners, dtype=np.int64)
    if len(owners) != len(vectors):
        raise ValueError(f"{len(vectors)} chunk vectors for {len(owners)} chunks")
    counts = np.bincount(owners, minlength=n)
    if len(counts) != n or np.any(counts == 0):
        raise ValueError(f"texts without a chunk: {np.flatnonzero(counts == 0)[:10].tolist()}")
    if weights is None and np.all(counts == 1):
        out = np.empty((n, vectors.shape[1]), dtype=np.float32)
        out[owners] = vectors
        return out
    w = np.ones(len(owners), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
    out = np.zeros((n, vectors.shape[1]), dtype=np.float32)
    np.add.at(out, owners, vectors * w[:, None])
    out /= np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
    return out


class SentenceTransformerEmbedder(Embedder):
    """A local sentence-transformers folder on the CPU (or a GPU when one is there and ``device`` allows)."""

    def __init__(self, folder: str | Path, *, device: str | None = None, batch_size: int = 16):
        self.folder = Path(folder)
        if not (self.folder / "modules.json").exists():
            raise EmbedderError(f"{self.folder}: not a sentence-transformers folder (no modules.json)")
        self.prefixes = _read_prefixes(self.folder)
        self.id = folder_id(self.folder)
        self.batch_size = batch_size
        self._device = device
        self._model = None
        self._tokenizer = None
        self._max_tokens: int | None = None
        self._lock = threading.Lock()
        config = json.loads((self.folder / "config.json").read_text()) if (self.folder / "config.json").exists() else {}
        self.dim = int(config.get("hidden_size", 0)) or 0

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.set_verbosity_error()  # long texts are chunked here; their length warning is noise

                    device = self._device
                    if device is None:
                        import torch

                        device = "cuda" if torch.cuda.is_available() else "cpu"
                    model = SentenceTransformer(str(self.folder), device=device, local_files_only=True)
                    self.dim = _embedding_dimension(model)
                    self._model = model
        return self._model

    @property
    def max_tokens(self) -> int:
        """The most tokens the model reads at once, from the folder's configuration when it says (so that a run
        whose embeddings are all cached never loads the model)."""
        if self._max_tokens is None:
            for name, key in (("laari_rebuild.json", "max_tokens"), ("sentence_bert_config.json", "max_seq_length")):
                path = self.folder / name
                value = json.loads(path.read_text()).get(key) if path.exists() else None
                if value:
                    self._max_tokens = int(value)
                    break
            else:
                self._max_tokens = int(self.model.max_seq_length)
        return self._max_tokens

    @property
    def tokenizer(self):
        if self._model is not None:
            return self._model.tokenizer
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    from transformers import AutoTokenizer
                    from transformers.utils import logging as hf_logging

                    hf_logging.set_verbosity_error()  # counting tokens of long texts is the point, not a mistake
                    self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        return self._tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        enc = self.tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
        return [len(ids) for ids in enc]

    def token_counts(self, texts: Sequence[str], kind: TextKind = TextKind.PASSAGE) -> list[int]:
        """Tokens of each text as the model sees it (with its prefix); above ``max_tokens`` it is chunked."""
        prefix = self.prefixes.get(TextKind(kind).value, "")
        return self.count_tokens([prefix + t for t in texts])

    def chunk(self, text: str, prefix: str = "") -> list[str]:
        """Split a text into pieces that fit the model with their prefix, at sentence (then word) boundaries.
        Always at least one piece: a long text with no words (symbols only) is one piece, which the model cuts."""
        budget = self.max_tokens - 2
        if self.count_tokens([prefix + text])[0] <= self.max_tokens:
            return [text]
        pieces: list[str] = []
        for sentence in split_sentences(text):
            if self.count_tokens([prefix + sentence])[0] <= budget:
                pieces.append(sentence)
                continue
            ws = words(sentence)  # an over-long "sentence": cut it into word runs
            step = max(8, budget // 3)
            pieces.extend(" ".join(ws[i : i + step]) for i in range(0, len(ws), step))
        chunks: list[str] = []
        current: list[str] = []
        for piece in pieces:
            candidate = " ".join(current + [piece])
            if current and self.count_tokens([prefix + candidate])[0] > budget:
                chunks.append(" ".join(current))
                current = [piece]
            else:
                current.append(piece)
        if current:
            chunks.append(" ".join(current))
        return chunks or [text]

    def encode(self, texts: Sequence[str], kind: TextKind = TextKind.PASSAGE, *, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        prefix = self.prefixes.get(TextKind(kind).value, "")
        if not texts:
            return np.zeros((0, self.dim or _embedding_dimension(self.model)), dtype=np.float32)
        owners: list[int] = []
        flat: list[str] = []
        for i, text in enumerate(texts):
            for piece in self.chunk(text, prefix):
                owners.append(i)
                flat.append(prefix + piece)
        vectors = self.model.encode(flat, batch_size=self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=progress)
        return pool_chunks(vectors, owners, len(texts), self.count_tokens(flat) if len(flat) > len(texts) else None)
