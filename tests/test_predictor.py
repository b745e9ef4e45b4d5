import pytest
import yaml

from classifier.bundle import load_bundle
from classifier.predictor import InputError, ModelMismatchError, Predictor
from classifier.prediction import ProjectInput
from classifier.taxonomy import DEFAULT_TAXONOMY_PATH, parse_taxonomy
from tests.conftest import HashingEmbedder

TEXT = ("Hankkeessa kehitetään työterveyshuollon ja esihenkilöiden yhteistyötä varhaisen tuen mallin avulla. "
        "Tavoitteena on vähentää sairauspoissaoloja ja tukea työhön paluuta kolmessa kunnassa. "
        "Työkykykoordinaattori ohjaa prosessia.")


@pytest.fixture()
def predictor(trained_bundle):
    return Predictor(load_bundle(trained_bundle.path), HashingEmbedder())


def test_prediction_has_every_field_and_explanation(predictor, taxonomy):
    p = predictor.predict_one(TEXT, title="Varhainen tuki", id="X-1")
    assert p.laari in taxonomy.verdict_ids
    assert set(p.laari_scores) == set(taxonomy.laari_ids)
    assert abs(sum(p.laari_scores.values()) - 1) < 1e-3
    assert 0 <= p.fit <= 1 and p.fit_verdict in ("typical", "borderline", "outlier")
    assert set(p.tag_scores) == set(taxonomy.tag_ids) and set(p.tags) <= set(taxonomy.tag_ids)
    e = p.explanation
    assert e["runner_up"]["laari"] != max(p.laari_scores, key=p.laari_scores.get)
    assert e["margin"] >= 0
    assert len(e["similar"]) == 3 and all({"id", "title", "laari", "similarity"} <= set(s) for s in e["similar"])
    assert 1 <= len(e["sentences"]) <= 3 and all(s["text"] in TEXT or s["text"] == "Varhainen tuki"
                                                 for s in e["sentences"])
    assert e["terms"] and all({"term", "weight"} <= set(t) for t in e["terms"])
    assert e["fit"]["percentile"] is not None
    assert p.model_version == "unit"


def test_terms_come_from_the_text(predictor):
    from classifier.lexical import _lemma
    from classifier.text import words

    p = predictor.predict_one(TEXT)
    lemmas = {_lemma(w) for w in words(TEXT.lower())} | set(TEXT.lower().split())
    assert p.explanation["terms"]
    for t in p.explanation["terms"]:
        assert t["term"] in lemmas, t


def test_empty_and_whitespace_descriptions_are_refused(predictor):
    with pytest.raises(InputError, match="description: empty"):
        predictor.predict_one("   \n\t ")
    results = predictor.predict_many([ProjectInput(description=""), ProjectInput(description=TEXT)])
    assert isinstance(results[0], InputError) and not isinstance(results[1], Exception)


def test_text_without_words_is_refused_and_leaves_the_others_alone(predictor):
    junk = "🙂 ★ - " * 500
    with pytest.raises(InputError, match="no words to read"):
        predictor.predict_one(junk)
    alone = predictor.predict_one(TEXT)
    results = predictor.predict_many([ProjectInput(description=junk), ProjectInput(description=TEXT)],
                                     remember=False)
    assert isinstance(results[0], InputError)
    assert results[1].laari_scores == alone.laari_scores and results[1].fit == alone.fit


def test_over_long_description_is_refused_with_the_limit(trained_bundle):
    p = Predictor(load_bundle(trained_bundle.path), HashingEmbedder(), max_description_chars=100)
    with pytest.raises(InputError, match="the limit is 100"):
        p.predict_one(TEXT)


def test_non_finnish_text_is_flagged_but_predicted(predictor):
    p = predictor.predict_one("The project improves occupational health care cooperation with employers and "
                              "reduces sickness absence in three municipalities of the region.")
    assert p.language == "other" and any("Finnish" in w for w in p.warnings)
    assert p.laari


def test_taxonomy_mismatch_is_refused_naming_the_ids(trained_bundle):
    data = yaml.safe_load(DEFAULT_TAXONOMY_PATH.read_text(encoding="utf-8"))
    data["laarit"] = data["laarit"][:4]
    other = parse_taxonomy(data, "small.yaml")
    with pytest.raises(ModelMismatchError, match=r"laarit: \+muutoskyky"):
        Predictor.load(trained_bundle.path, embedder=HashingEmbedder(), taxonomy=other)


def test_embedder_mismatch_is_refused(trained_bundle):
    class Other(HashingEmbedder):
        id = "another-model"

    with pytest.raises(ModelMismatchError, match="trained with embedder"):
        Predictor(load_bundle(trained_bundle.path), Other())


def test_batch_results_keep_order_and_embed_once(trained_bundle):
    emb = HashingEmbedder()
    p = Predictor(load_bundle(trained_bundle.path), emb)
    items = [ProjectInput(description=TEXT, id="a"), ProjectInput(description=" ", id="b"),
             ProjectInput(description="Nuorten työpajatoiminta ja etsivä nuorisotyö Kajaanissa.", id="c")]
    res = p.predict_many(items, explain=False)
    assert [getattr(r, "id", None) for r in res] == ["a", None, "c"]
    assert emb.calls == 1


def test_repeated_text_is_answered_from_memory_with_equal_result(trained_bundle):
    emb = HashingEmbedder()
    p = Predictor(load_bundle(trained_bundle.path), emb)
    first = p.predict_one(TEXT, id="m1")
    calls = emb.calls
    second = p.predict_one(TEXT, id="m1")
    assert emb.calls == calls  # nothing embedded again
    assert second == first and second is not first
    second.tags.append("changed")
    assert p.predict_one(TEXT, id="m1") == first  # callers cannot corrupt the remembered result


def test_sentences_can_be_left_out_of_the_explanation(trained_bundle):
    p = Predictor(load_bundle(trained_bundle.path), HashingEmbedder())
    lean = p.predict_many([ProjectInput(description=TEXT, id="s1")], sentences=False)[0]
    full = p.predict_many([ProjectInput(description=TEXT, id="s1")])[0]
    assert "sentences" not in lean.explanation and full.explanation["sentences"]
    assert lean.explanation["terms"] == full.explanation["terms"] and lean.laari == full.laari


def test_sentences_are_scored_without_a_transformer_pass_of_their_own(trained_bundle):
    """Supporting sentences hold the document's embedding fixed: one embedding per fresh text, none per sentence."""
    emb = HashingEmbedder()
    p = Predictor(load_bundle(trained_bundle.path), emb)
    p.model.router_weight = 0.5  # make the router use both channels, whatever the small model chose
    res = p.predict_one(TEXT, id="e1")
    assert emb.texts_seen == 1
    sentences = res.explanation["sentences"]
    assert sentences and all(0 < s["support"] <= 1 for s in sentences)
