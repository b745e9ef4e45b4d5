"""The ONNX engine: the ONNX build of the model (``onnx_build``) run by ONNX Runtime, tokenised by the
``tokenizers`` library from the same tokenizer file. Prefixes, chunking and pooling of chunks are the shared ones
(``chunking``); inside a chunk the graph does the torch engine's mean pooling, and the vectors are normalised here.

An int8 build quantises activations per call (``DynamicQuantizeLinear`` takes one scale over the whole input, batch
and padding included), so a text's vector would depend on the texts batched with it (up to 0.013 per component,
measured); it is therefore run one piece per call, which makes each vector a function of its text alone (what the
cache assumes). An fp32 build runs in batches of texts of similar length."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from .backends import ONNX, backend_id
from .chunking import ChunkingEmbedder
from .onnx_build import MODEL_FILE, check_model_file, read_marker
from .sentence_transformer import EmbedderError

class OnnxEmbedder(ChunkingEmbedder):
    """An ONNX build folder on the CPU; the model file is hash-checked and loaded on first use."""

    device = "cpu"  # ONNX Runtime's CPU provider only

    def __init__(self, folder: str | Path, *, threads: int | None = None):
        self.folder = Path(folder)
        self.meta = read_marker(self.folder)
        self.prefixes = dict(self.meta.get("prefixes") or {})
        self.quantisation = self.meta["quantisation"]
        self.id = backend_id(self.meta["source_id"], ONNX, self.quantisation)
        self.dim = int(self.meta["dim"])
        self.batch_size = 1 if self.quantisation.startswith("int8") else 16
        self.threads = threads
        self._max_tokens = int(self.meta["max_tokens"])
        self._pad_id = int(self.meta.get("pad_id", 0))
        self._run = None
        self._counter = None
        self._encoder = None
        self._lock = threading.Lock()

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def _tokenizers(self):
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    from tokenizers import Tokenizer

                    path = str(self.folder / "tokenizer.json")
                    counter, encoder = Tokenizer.from_file(path), Tokenizer.from_file(path)
                    counter.no_truncation()
                    counter.no_padding()
                    encoder.enable_truncation(max_length=self._max_tokens)  # as the torch engine cuts
                    encoder.no_padding()
                    self._counter, self._encoder = counter, encoder
        return self._counter, self._encoder

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        counter, _ = self._tokenizers()
        return [len(e.ids) for e in counter.encode_batch(list(texts), add_special_tokens=True)]

    @property
    def run(self):
        """A function (input_ids, attention_mask) -> pooled vectors, loading the model on first use."""
        if self._run is None:
            with self._lock:
                if self._run is None:
                    check_model_file(self.folder, self.meta)
                    self._run = self._load()
        return self._run

    def _load(self):
        path = str(self.folder / MODEL_FILE)
        try:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if self.threads:
                options.intra_op_num_threads = self.threads
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

            def run(ids, mask):
                return session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
            return run
        except ImportError as exc:
            raise EmbedderError(f"the onnxruntime package is not installed: {exc}") from exc
        except Exception as exc:  # onnxruntime raises its own types for a file it cannot read
            raise EmbedderError(f"{path}: onnxruntime cannot load it ({exc}); run `laari setup` to rebuild it") \
                from exc

    def encode_pieces(self, pieces: list[str], *, progress: bool = False) -> np.ndarray:
        _, encoder = self._tokenizers()
        encodings = encoder.encode_batch(pieces, add_special_tokens=True)
        run = self.run
        out = np.empty((len(pieces), self.dim), dtype=np.float32)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")  # similar lengths share a batch
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.full((len(idx), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            out[idx] = run(ids, mask)
        out /= np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
        return out
