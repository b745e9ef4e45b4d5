"""Build the ONNX form of a sentence-transformers folder (the rebuilt e5 model): export the transformer with mean
pooling by ``torch.onnx.export`` (eager attention, a pattern ONNX Runtime's transformer optimizer fuses into its
Attention, SkipLayerNormalization and BiasGelu kernels), fuse, quantise the weights to int8 with
``onnxruntime.quantization.quantize_dynamic``, and write a folder with the model, the tokenizer and a marker (``laari_onnx.json``) recording the source model's
id, the prefixes, the token budget and the sha256 of the model file.

How it is checked: the export and the quantisation are deterministic for given versions of torch, onnx and
onnxruntime (two builds give the same bytes), but not across versions, so no fixed hash can be expected on a new
machine. The marker's sha256 is checked whenever the model is loaded (a damaged or replaced file is refused), and
``laari setup`` checks the vectors against the torch engine's on fixed sentences (``verify_against_torch``)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .. import config
from ..atomic import replace_folder
from ..tables import file_hash
from .sentence_transformer import EmbedderError, _read_prefixes, folder_id

ONNX_FORMAT = 2  # bump when the folder changes shape (2: fused kernels)
MARKER = "laari_onnx.json"
MODEL_FILE = "model.onnx"
OPSET = 17
# The builds: ``int8pc`` quantises each weight matrix with one scale per output channel (what the onnx backend runs),
# ``int8`` with one scale per matrix (kept to compare: its vectors are further from torch's, cosine 0.98 against
# 0.995, and it moved a real-sample project that int8pc does not; BENCHMARKS.md), ``fp32`` only fuses.
QUANTISE_OPTIONS = {"int8pc": {"per_channel": True}, "int8": {"per_channel": False}}
QUANTISATIONS = (*QUANTISE_OPTIONS, "fp32")
# lowest cosine to the torch vectors on the reference sentences that `laari setup` accepts
MIN_COSINE = {"int8pc": 0.99, "int8": 0.97, "fp32": 0.9999}


def onnx_dir(source: Path, quantisation: str) -> Path:
    """Where the ONNX form of the model folder ``source`` lives (keyed by the source's id)."""
    return config.laari_home() / "embedders" / f"{folder_id(Path(source))}.onnx-{quantisation}"


def read_marker(folder: Path) -> dict:
    """The folder's marker, or an EmbedderError saying why the folder is not a usable ONNX build."""
    folder = Path(folder)
    hint = "run `laari setup` to build it"
    marker = folder / MARKER
    if not marker.exists():
        raise EmbedderError(f"the ONNX embedding model is not built ({folder}); {hint}")
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"{marker}: unreadable ({exc}); {hint}") from exc
    if meta.get("format") != ONNX_FORMAT:
        raise EmbedderError(f"{folder}: ONNX build format {meta.get('format')}, expected {ONNX_FORMAT}; {hint}")
    for name in (MODEL_FILE, "tokenizer.json"):
        if not (folder / name).exists():
            raise EmbedderError(f"{folder}: {name} is missing; {hint}")
    return meta


def check_model_file(folder: Path, meta: dict) -> None:
    """Refuse a model file whose sha256 is not the one recorded when it was built."""
    digest = file_hash(Path(folder) / MODEL_FILE)
    if digest != meta.get("sha256"):
        raise EmbedderError(f"{folder / MODEL_FILE}: sha256 {digest[:12]} is not the built file's "
                            f"{str(meta.get('sha256'))[:12]} (damaged or replaced); run `laari setup` to rebuild it")


def _pooled_module(source: Path):
    """The source folder's transformer with mean pooling over the attention mask (normalised by the engine)."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text()) \
        if (source / "1_Pooling" / "config.json").exists() else {}
    if pooling.get("pooling_mode", "mean" if pooling.get("pooling_mode_mean_tokens") else None) != "mean":
        raise EmbedderError(f"{source}: only mean pooling is exported to ONNX (found {pooling or 'none'})")
    encoder = AutoModel.from_pretrained(str(source), local_files_only=True, attn_implementation="eager").eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    return MeanPooled(encoder), encoder.config


def build(source: Path, target: Path | None = None, quantisation: str = "int8pc") -> Path:
    """Export ``source`` (a sentence-transformers folder) to ONNX at ``target`` (atomically)."""
    import onnx
    import onnxruntime
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    if quantisation not in QUANTISATIONS:
        raise ValueError(f"quantisation is one of {QUANTISATIONS}, not {quantisation!r}")
    source = Path(source)
    target = Path(target) if target else onnx_dir(source, quantisation)
    module, model_config = _pooled_module(source)
    dim, heads, pad_id = model_config.hidden_size, model_config.num_attention_heads, model_config.pad_token_id or 0
    rebuild_meta = json.loads((source / "laari_rebuild.json").read_text()) \
        if (source / "laari_rebuild.json").exists() else {}
    st_config = json.loads((source / "sentence_bert_config.json").read_text()) \
        if (source / "sentence_bert_config.json").exists() else {}
    max_tokens = int(rebuild_meta.get("max_tokens") or st_config.get("max_seq_length") or 512)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".onnx-", dir=target.parent))
    try:
        out = work / "out"
        out.mkdir()
        fp32 = work / "fp32.onnx"
        ids = torch.tensor([[0, 100, 200, 2], [0, 300, 2, pad_id]])
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
        axes = {0: "batch", 1: "tokens"}
        with torch.no_grad():
            torch.onnx.export(module, (ids, mask), str(fp32), input_names=["input_ids", "attention_mask"],
                              output_names=["embedding"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}})
        fused = work / "fused.onnx"
        optimize_model(str(fp32), model_type="bert", num_heads=heads, hidden_size=dim, opt_level=1) \
            .save_model_to_file(str(fused))
        if quantisation in QUANTISE_OPTIONS:  # the fused kernels' outputs have no inferred type: they are float
            quantize_dynamic(str(fused), str(out / MODEL_FILE), weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                             **QUANTISE_OPTIONS[quantisation])
        else:
            os.replace(fused, out / MODEL_FILE)
        shutil.copyfile(source / "tokenizer.json", out / "tokenizer.json")
        (out / MARKER).write_text(json.dumps({
            "format": ONNX_FORMAT,
            "source_id": folder_id(source),
            "quantisation": quantisation,
            "prefixes": _read_prefixes(source),
            "max_tokens": max_tokens,
            "dim": dim,
            "pad_id": pad_id,
            "sha256": file_hash(out / MODEL_FILE),
            "built_with": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
                           "opset": OPSET},
        }, indent=2))
        replace_folder(out, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def is_built(folder: Path, source: Path, *, check_file: bool = False) -> bool:
    """The folder holds a build of this format from exactly this source; with ``check_file``, one whose model file
    still has its recorded hash (otherwise that is checked when the model is loaded)."""
    try:
        meta = read_marker(folder)
        if check_file:
            check_model_file(folder, meta)
        return meta.get("source_id") == folder_id(Path(source))
    except EmbedderError:
        return False


def verify_against_torch(folder: Path, source: Path, sentences: list[str] | None = None) -> float:
    """Lowest cosine between the ONNX build's and the torch engine's vectors, over passage and query prefixes."""
    from .base import TextKind
    from .onnx_runtime import OnnxEmbedder
    from .sentence_transformer import SentenceTransformerEmbedder
    from .verify import REFERENCE_SENTENCES

    sentences = sentences or REFERENCE_SENTENCES
    ours, theirs = OnnxEmbedder(folder), SentenceTransformerEmbedder(source, device="cpu")
    worst = 1.0
    for kind in (TextKind.PASSAGE, TextKind.QUERY):
        a, b = ours.encode(sentences, kind), theirs.encode(sentences, kind)
        worst = min(worst, float(np.sum(a * b, axis=1).min()))
    return worst
