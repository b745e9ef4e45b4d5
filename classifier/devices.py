"""Where the embedding model runs: ``Device`` (``auto``, ``cpu``, ``cuda``, what ``laari batch --device`` takes)
and ``resolve_device``, the one place a requested device is checked against this machine and the embedding
backend. Kept apart from the embedders (and torch) so that the command line can name the choices cheaply."""

from __future__ import annotations

from enum import Enum


class Device(str, Enum):
    """Where the embedding model runs, as asked."""

    AUTO = "auto"  # CUDA when torch sees a device, else the CPU
    CPU = "cpu"
    CUDA = "cuda"


class DeviceError(ValueError):
    """The device asked for cannot be used here (no CUDA device, or an engine that runs on the CPU only)."""


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False when torch is not installed)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: Device | str | None = None, backend: str | None = None) -> Device:
    """The device the embedding model will run on, ``Device.CPU`` or ``Device.CUDA``, for the asked ``device``
    (default ``auto``) and the embedding ``backend`` named (else ``LAARI_EMBED_BACKEND``'s; None when neither names
    one). ``auto`` is CUDA when torch sees a device, else the CPU. The ONNX engine runs on the CPU only: where it is
    named, ``auto`` is the CPU and ``cuda`` an error; where it is only the default, a GPU goes to the torch engine
    (``load_embedder``). Raises DeviceError, saying what to use instead, for ``cuda`` where torch sees no CUDA
    device or with a named ONNX engine, and for a name that is no device."""
    from .embedders.backends import ENV_VAR, ONNX, named_backend

    try:
        asked = Device((device or Device.AUTO).lower())
    except (ValueError, AttributeError):
        raise DeviceError(f"device {device!r}: use one of {', '.join(d.value for d in Device)}") from None
    if named_backend(backend) == ONNX:
        if asked is Device.CUDA:
            raise DeviceError(f"device cuda: the onnx embedding backend ({ENV_VAR}=onnx) runs on the CPU only; "
                              f"use --device cpu (or auto), or {ENV_VAR}=torch to embed on the GPU")
        return Device.CPU
    if asked is Device.AUTO:
        return Device.CUDA if cuda_available() else Device.CPU
    if asked is Device.CUDA and not cuda_available():
        raise DeviceError("device cuda: torch sees no CUDA device on this machine (torch.cuda.is_available() is "
                          "False); use --device cpu, or --device auto to take a GPU only where there is one")
    return asked
