"""The sentence-transformers engine, with long texts split into chunks and pooled, never cut."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from .chunking import ChunkingEmbedder, pool_chunks  # noqa: F401  (pool_chunks: imported from here too)


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


class SentenceTransformerEmbedder(ChunkingEmbedder):
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

    def output_dim(self) -> int:
        return self.dim or _embedding_dimension(self.model)

    def encode_pieces(self, pieces: list[str], *, progress: bool = False) -> np.ndarray:
        return self.model.encode(pieces, batch_size=self.batch_size, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=progress)
