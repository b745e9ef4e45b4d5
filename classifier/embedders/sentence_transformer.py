"""The sentence-transformers engine, with long texts split into chunks and pooled, never cut."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import cuda_batch_size
from ..devices import cuda_available
from .backends import torch_cuda_id
from .chunking import ChunkingEmbedder, pool_chunks  # noqa: F401  (pool_chunks: imported from here too)

CPU_BATCH_SIZE = 16


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
    """A local sentence-transformers folder, on ``device``: ``"cpu"``, ``"cuda"``, or None (a GPU when torch sees
    one, else the CPU). ``fp16``: half-precision weights (CUDA only); its vectors differ slightly from the fp32
    ones, so the engine has an id of its own (``backends.torch_cuda_id``). ``batch_size``: pieces per forward pass
    (default 16; on CUDA ``config.cuda_batch_size()``)."""

    def __init__(self, folder: str | Path, *, device: str | None = None, batch_size: int | None = None,
                 fp16: bool = False):
        self.folder = Path(folder)
        device = getattr(device, "value", device)  # a devices.Device is its name
        if device not in (None, "cpu", "cuda"):
            raise EmbedderError(f"device {device!r}: use cpu or cuda (or None)")
        if fp16 and device != "cuda":
            raise EmbedderError("fp16 weights are for CUDA only (device='cuda')")
        if not (self.folder / "modules.json").exists():
            raise EmbedderError(f"{self.folder}: not a sentence-transformers folder (no modules.json)")
        self.prefixes = _read_prefixes(self.folder)
        self.fp16 = fp16
        self.id = torch_cuda_id(folder_id(self.folder)) if fp16 else folder_id(self.folder)
        self.batch_size = batch_size or (cuda_batch_size() if device == "cuda" else CPU_BATCH_SIZE)
        self._device = device
        self._model = None
        self._tokenizer = None
        self._max_tokens: int | None = None
        self._lock = threading.Lock()
        config = json.loads((self.folder / "config.json").read_text()) if (self.folder / "config.json").exists() else {}
        self.dim = int(config.get("hidden_size", 0)) or 0

    @property
    def device(self) -> str:
        """Where the model runs (``"cpu"`` or ``"cuda"``); with ``device=None``, decided on first use."""
        if self._device is None:
            self._device = "cuda" if cuda_available() else "cpu"
        return self._device

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.set_verbosity_error()  # long texts are chunked here; their length warning is noise

                    model = SentenceTransformer(str(self.folder), device=self.device, local_files_only=True)
                    if self.fp16:
                        model.half()
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
        vectors = self.model.encode(pieces, batch_size=self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=progress)
        return np.asarray(vectors, dtype=np.float32)  # fp16 weights give fp16 vectors
