"""Where the embedding model runs: ``auto``/``cpu``/``cuda`` resolved in one place (no GPU needed: torch's view of
CUDA is patched), the fp16 CUDA engine's own embedder id, and which engine a device gets."""

from __future__ import annotations

import json
import logging

import pytest

from classifier.bundle import load_bundle
from classifier.devices import Device, DeviceError, resolve_device
from classifier.embedders import EmbedderError, EmbeddingCache, TextKind, load_embedder
from classifier.embedders.backends import backend_id, split_id, torch_cuda_id
from classifier.embedders.sentence_transformer import SentenceTransformerEmbedder, folder_id
from classifier.predictor import ModelMismatchError, Predictor
from tests.conftest import HashingEmbedder


@pytest.fixture()
def cuda(monkeypatch):
    """Set what torch says about CUDA: ``cuda(True)`` or ``cuda(False)``; no backend named unless a test names
    one."""
    import torch

    monkeypatch.delenv("LAARI_EMBED_BACKEND", raising=False)

    def set_to(present: bool):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: present)
    return set_to


# ------------------------------------------------------------------ resolving the device
def test_auto_is_the_cpu_without_cuda_and_the_gpu_with_it(cuda):
    cuda(False)
    assert resolve_device("auto") is Device.CPU and resolve_device(None) is Device.CPU
    assert resolve_device(Device.CPU) is Device.CPU
    cuda(True)
    assert resolve_device("auto") is Device.CUDA and resolve_device("CUDA") is Device.CUDA
    assert resolve_device("cpu") is Device.CPU  # asked for: the CPU even beside a GPU


def test_cuda_without_a_cuda_device_is_a_one_line_error_saying_what_to_use(cuda):
    cuda(False)
    with pytest.raises(DeviceError) as err:
        resolve_device(Device.CUDA)
    message = str(err.value)
    assert "\n" not in message
    assert "device cuda" in message and "torch sees no CUDA device" in message and "--device cpu" in message


def test_the_onnx_engine_is_cpu_only(cuda, monkeypatch):
    cuda(True)
    monkeypatch.setenv("LAARI_EMBED_BACKEND", "onnx")
    assert resolve_device("auto") is Device.CPU  # a GPU is there, but ONNX Runtime runs here on the CPU
    assert resolve_device("cpu") is Device.CPU
    with pytest.raises(DeviceError, match=r"onnx embedding backend.*CPU only.*--device cpu"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="onnx"):
        resolve_device("cuda", backend="onnx")
    assert resolve_device("cuda", backend="torch") is Device.CUDA


def test_a_name_that_is_no_device_is_refused():
    with pytest.raises(DeviceError, match="auto, cpu, cuda"):
        resolve_device("tpu")


# ------------------------------------------------------------------ the fp16 engine's id
def _st_folder(tmp_path):
    """A folder the torch engine accepts (it reads files, loads no model until it embeds)."""
    folder = tmp_path / "tiny-st"
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    (folder / "config.json").write_text(json.dumps({"hidden_size": 8}))
    return folder


def test_the_fp16_cuda_engine_has_an_id_of_its_own_that_names_the_same_model(tmp_path):
    folder = _st_folder(tmp_path)
    model = folder_id(folder)
    cpu = SentenceTransformerEmbedder(folder, device="cpu")
    gpu = SentenceTransformerEmbedder(folder, device="cuda", fp16=True)
    assert cpu.id == model and gpu.id == f"{model}+torch-cuda-fp16" == torch_cuda_id(model)
    assert split_id(gpu.id) == (model, "torch-cuda-fp16") and split_id(cpu.id) == (model, "torch")
    assert gpu.id not in (backend_id(model, "onnx", "int8"), backend_id(model, "onnx", "fp32"))
    # the cache keys differ, so fp16 vectors never answer for fp32 ones
    assert EmbeddingCache.key(cpu.id, TextKind.PASSAGE, "teksti") != EmbeddingCache.key(gpu.id, TextKind.PASSAGE,
                                                                                      "teksti")
    assert SentenceTransformerEmbedder(folder, device="cuda").id == model  # fp32 on a GPU: the model's own vectors
    with pytest.raises(EmbedderError, match="fp16.*CUDA only"):
        SentenceTransformerEmbedder(folder, device="cpu", fp16=True)


def test_load_embedder_gives_the_fp16_engine_with_big_batches_on_cuda(tmp_path, cuda, monkeypatch):
    folder = _st_folder(tmp_path)
    monkeypatch.delenv("LAARI_CUDA_BATCH_SIZE", raising=False)
    cuda(True)
    gpu = load_embedder(folder, cache=False, device="auto")
    assert gpu.inner.fp16 and gpu.device == "cuda" and gpu.id == torch_cuda_id(folder_id(folder))
    assert gpu.inner.batch_size == 64
    monkeypatch.setenv("LAARI_CUDA_BATCH_SIZE", "128")
    assert load_embedder(folder, cache=False, device="cuda").inner.batch_size == 128
    cpu = load_embedder(folder, cache=False, device="cpu")
    assert not cpu.inner.fp16 and cpu.device == "cpu" and cpu.id == folder_id(folder) and cpu.inner.batch_size == 16
    cuda(False)
    assert load_embedder(folder, cache=False, device="auto").device == "cpu"
    with pytest.raises(DeviceError, match="no CUDA device"):
        load_embedder(folder, cache=False, device="cuda")


def test_the_default_onnx_engine_gives_a_gpu_to_torch_and_keeps_the_cpu(tmp_path, cuda, monkeypatch):
    """With no backend named, the default model embeds with ONNX on the CPU and with torch (fp16) on a GPU; with
    onnx named, a GPU asked for is an error (test_the_onnx_engine_is_cpu_only)."""
    import classifier.embedders as embedders
    from classifier.embedders.onnx_runtime import OnnxEmbedder

    folder = _st_folder(tmp_path)
    monkeypatch.delenv("LAARI_EMBEDDER", raising=False)
    monkeypatch.setattr(embedders, "ensure_default_model", lambda: folder)
    asked = []
    monkeypatch.setattr(embedders, "ensure_onnx_model", lambda src, build_if_missing=True: asked.append(src))
    monkeypatch.setattr(OnnxEmbedder, "__init__", lambda self, where: setattr(self, "id", "m+onnx-int8pc"))
    cuda(True)
    assert resolve_device("cuda") is Device.CUDA and resolve_device("auto") is Device.CUDA
    gpu = load_embedder(cache=False, device="cuda")
    assert isinstance(gpu.inner, SentenceTransformerEmbedder) and gpu.inner.fp16 and gpu.id == torch_cuda_id(
        folder_id(folder))
    assert isinstance(load_embedder(cache=False, device="auto").inner, SentenceTransformerEmbedder)
    assert asked == []
    cpu = load_embedder(cache=False, device="cpu")
    assert isinstance(cpu.inner, OnnxEmbedder) and asked == [folder]
    cuda(False)
    assert isinstance(load_embedder(cache=False, device="auto").inner, OnnxEmbedder)
    assert isinstance(load_embedder(cache=False).inner, OnnxEmbedder)


def test_a_model_trained_on_cpu_vectors_accepts_the_gpu_engine_of_the_same_model(trained_bundle, caplog):
    bundle = load_bundle(trained_bundle.path)
    trained = bundle.manifest["embedder_id"]
    gpu = HashingEmbedder()
    gpu.id = torch_cuda_id(trained)
    with caplog.at_level(logging.WARNING, logger="classifier.predictor"):
        p = Predictor(bundle, gpu)
    assert p.embedder_id == gpu.id
    assert any(trained in r.getMessage() and gpu.id in r.getMessage() for r in caplog.records)
    stranger = HashingEmbedder()
    stranger.id = torch_cuda_id("another-model@0123456789ab")
    with pytest.raises(ModelMismatchError, match="trained with embedder"):
        Predictor(bundle, stranger)
