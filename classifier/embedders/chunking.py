"""What every transformer engine shares: the e5 prefixes, the token budget, splitting long texts into chunks at
sentence boundaries (never cut), and pooling the chunks' vectors back into one vector per text. An engine only
counts tokens and turns a list of prefixed pieces into unit vectors (batching them by length itself: sentence-
transformers sorts by length, the ONNX engine by token count), in the order it was given them."""

from __future__ import annotations

from abc import abstractmethod
from typing import Generator, Sequence

import numpy as np

from ..text import split_sentences, words
from .base import Embedder, TextKind


def pool_chunks(vectors: np.ndarray, owners: Sequence[int], n: int, weights: Sequence[int] | None) -> np.ndarray:
    """One unit vector per text from its chunks' vectors (weighted by ``weights``, e.g. tokens), aligned by the
    explicit owner index of each chunk; every text must own at least one chunk."""
    owners = np.asarray(owners, dtype=np.int64)
    if len(owners) != len(vectors):
        raise ValueError(f"{len(vectors)} chunk vectors for {len(owners)} chunks")
    counts = np.bincount(owners, minlength=n)
    if len(counts) != n or np.any(counts == 0):
        raise ValueError(f"texts without a chunk: {np.flatnonzero(counts == 0)[:10].tolist()}")
    if weights is None and np.all(counts == 1):
        out = np.empty((n, vectors.shape[1]), dtype=np.float32)
        out[owners] = vectors
        return out
    w = np.ones(len(owners), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
    out = np.zeros((n, vectors.shape[1]), dtype=np.float32)
    np.add.at(out, owners, vectors * w[:, None])
    out /= np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)
    return out


class ChunkingEmbedder(Embedder):
    """An embedder whose model reads at most ``max_tokens`` tokens; ``prefixes`` maps a TextKind to its prefix."""

    prefixes: dict[str, str]

    @property
    @abstractmethod
    def max_tokens(self) -> int:
        """The most tokens the model reads at once (special tokens included)."""

    @abstractmethod
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as given (special tokens included, nothing cut)."""

    @abstractmethod
    def encode_pieces(self, pieces: list[str], *, progress: bool = False) -> np.ndarray:
        """Unit vectors [len(pieces), dim] of texts that already carry their prefix and fit ``max_tokens``."""

    def output_dim(self) -> int:
        """The vectors' dimension (what an empty batch is shaped with)."""
        return self.dim

    def token_counts(self, texts: Sequence[str], kind: TextKind = TextKind.PASSAGE) -> list[int]:
        """Tokens of each text as the model sees it (with its prefix); above ``max_tokens`` it is chunked."""
        prefix = self.prefixes.get(TextKind(kind).value, "")
        return self.count_tokens([prefix + t for t in texts])

    def chunk(self, text: str, prefix: str = "") -> list[str]:
        """Split a text into pieces that fit the model with their prefix, at sentence (then word) boundaries.
        Always at least one piece: a long text with no words (symbols only) is one piece, which the model cuts."""
        budget = self.max_tokens - 2
        if self.count_tokens([prefix + text])[0] <= self.max_tokens:
            return [text]
        pieces: list[str] = []
        for sentence in split_sentences(text):
            if self.count_tokens([prefix + sentence])[0] <= budget:
                pieces.append(sentence)
                continue
            ws = words(sentence)  # an over-long "sentence": cut it into word runs
            step = max(8, budget // 3)
            pieces.extend(" ".join(ws[i : i + step]) for i in range(0, len(ws), step))
        chunks: list[str] = []
        current: list[str] = []
        for piece in pieces:
            candidate = " ".join(current + [piece])
            if current and self.count_tokens([prefix + candidate])[0] > budget:
                chunks.append(" ".join(current))
                current = [piece]
            else:
                current.append(piece)
        if current:
            chunks.append(" ".join(current))
        return chunks or [text]

    def encode(self, texts: Sequence[str], kind: TextKind = TextKind.PASSAGE, *, progress: bool = False) -> np.ndarray:
        texts = list(texts)
        prefix = self.prefixes.get(TextKind(kind).value, "")
        if not texts:
            return np.zeros((0, self.output_dim()), dtype=np.float32)
        owners: list[int] = []
        flat: list[str] = []
        for i, text in enumerate(texts):
            for piece in self.chunk(text, prefix):
                owners.append(i)
                flat.append(prefix + piece)
        vectors = self.encode_pieces(flat, progress=progress)  # each engine batches pieces by length
        return pool_chunks(vectors, owners, len(texts), self.count_tokens(flat) if len(flat) > len(texts) else None)

    def encode_steps(self, text: str, kind: TextKind = TextKind.PASSAGE,
                     pieces_per_step: int = 2) -> Generator[None, None, np.ndarray]:
        """``encode([text])[0]`` in steps: each step embeds at most ``pieces_per_step`` of the text's chunks and
        yields, so that a caller can do other work between the steps of a long text; returns the pooled vector
        (the same chunks, prefixes and token weights as ``encode``)."""
        prefix = self.prefixes.get(TextKind(kind).value, "")
        flat = [prefix + piece for piece in self.chunk(text, prefix)]
        step = max(1, int(pieces_per_step))
        parts = []
        for start in range(0, len(flat), step):
            parts.append(self.encode_pieces(flat[start:start + step]))
            if start + step < len(flat):
                yield
        vectors = np.vstack(parts)
        weights = self.count_tokens(flat) if len(flat) > 1 else None
        return pool_chunks(vectors, [0] * len(flat), 1, weights)[0]
