import numpy as np
import pytest

from classifier.model import EMBEDDING, LEXICAL, Documents, LaariModel, TrainingConfig
from classifier.text import document_text
from tests.conftest import HashingEmbedder, take


def docs_of(data, embedder):
    texts = [document_text(t, d) for t, d in zip(data.titles, data.descriptions)]
    return Documents(texts, embedder.encode(texts))


def fitted(data, taxonomy, channels=(EMBEDDING, LEXICAL), seed=0):
    model = LaariModel(taxonomy.laari_ids, taxonomy.out_of_theme.id, taxonomy.tag_ids,
                       config=TrainingConfig(seed=seed, channels=channels, folds=3))
    return model.fit(docs_of(data, HashingEmbedder()), data.laari, data.tags)


@pytest.fixture(scope="module")
def model(small_train, taxonomy):
    """The default fit on the small set, shared by the tests that only read it."""
    return fitted(small_train, taxonomy)


def test_probabilities_are_distributions_and_predictions_are_valid_labels(model, taxonomy, corpus_heldout):
    test = take(corpus_heldout, 3)
    docs = docs_of(test, HashingEmbedder())
    P = model.predict_proba(docs)
    assert P.shape == (len(test), 6)
    assert np.allclose(P.sum(axis=1), 1.0, atol=1e-5)
    assert set(model.predict(docs)) <= set(taxonomy.verdict_ids)
    assert all(set(t) <= set(taxonomy.tag_ids) for t in model.predict_tags(docs))


def test_model_learns_something_real(model, corpus_heldout):
    """Trained on 14 projects per label, the model must beat chance (1/6) by far on unseen projects."""
    test = take(corpus_heldout, 6)
    pred = model.predict(docs_of(test, HashingEmbedder()))
    accuracy = np.mean(np.asarray(pred) == np.asarray(test.laari))
    assert accuracy >= 0.5, accuracy


def test_cv_choices_are_recorded(model):
    assert model.channel_choice in ("embedding", "lexical", "both")
    assert set(model.cv["per_channel_router_macro_f1"]) == {EMBEDDING, LEXICAL}
    assert model.tag_thresholds.shape == (8,)
    assert 0.0 < model.out_threshold < 1.0


def test_lexical_only_model_needs_no_embeddings(small_train, taxonomy):
    model = fitted(small_train, taxonomy, channels=(LEXICAL,))
    assert model.channel_choice == "lexical"
    texts = [document_text(t, d) for t, d in zip(small_train.titles[:3], small_train.descriptions[:3])]
    assert len(model.predict(Documents(texts))) == 3


def test_training_is_deterministic(small_train, taxonomy):
    a = fitted(small_train, taxonomy, seed=3)
    b = fitted(small_train, taxonomy, seed=3)
    meta_a, arr_a = a.to_arrays()
    meta_b, arr_b = b.to_arrays()
    assert meta_a == meta_b
    assert all(np.array_equal(arr_a[k], arr_b[k]) for k in arr_a)


def test_unknown_label_is_refused(small_train, taxonomy):
    model = LaariModel(taxonomy.laari_ids, taxonomy.out_of_theme.id, taxonomy.tag_ids)
    labels = list(small_train.laari)
    labels[0] = "kulttuuri"
    with pytest.raises(ValueError, match="unknown laari labels.*kulttuuri"):
        model.fit(docs_of(small_train, HashingEmbedder()), labels, small_train.tags)


def test_choices_are_made_on_the_selected_rows_only(small_train, taxonomy):
    """Rows outside the selection train every fold but are never scored: relabelling them all as out of theme
    changes nothing that is scored, and the scored rows are exactly the selection."""
    docs = docs_of(small_train, HashingEmbedder())
    n = len(small_train)
    select = np.zeros(n, dtype=bool)
    select[::2] = True
    model = LaariModel(taxonomy.laari_ids, taxonomy.out_of_theme.id, taxonomy.tag_ids,
                       config=TrainingConfig(channels=(EMBEDDING,), folds=3))
    model.fit(docs, small_train.laari, small_train.tags, select=select, weights=np.where(select, 1.0, 0.5))
    assert model.cv["rows_scored"] == select.sum() and model.cv["rows_training_only"] == n - select.sum()
    assert list(model.oof_index_) == list(np.flatnonzero(select))
    assert model.oof_scores_[0].shape == (select.sum(), 6)
    assert 0 <= model.cv["ece"] <= 1 and set(model.cv["router_macro_f1_by_prior_strength"]) == {"0.0", "0.5", "1.0"}
    # the priors default to the selection's label mix
    mix = np.array([np.mean(np.asarray(small_train.laari)[select] == v) for v in model.verdicts])
    np.testing.assert_allclose(model.priors, mix)


def test_priors_are_a_setting_that_moves_probabilities(small_train, taxonomy, corpus_heldout):
    model = fitted(small_train, taxonomy, channels=(EMBEDDING,))
    docs = docs_of(take(corpus_heldout, 2), HashingEmbedder())
    model.prior_strength = 1.0
    before = model.predict_proba(docs)
    out = model.verdicts.index(taxonomy.out_of_theme.id)
    shares = {v: (0.9 if v == taxonomy.out_of_theme.id else 0.02) for v in model.verdicts}
    after = model.set_priors(shares).predict_proba(docs)
    assert np.all(after[:, out] > before[:, out])
    np.testing.assert_allclose(after.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="unknown verdict"):
        model.set_priors({"nope": 1.0})
    with pytest.raises(ValueError, match="positive share"):
        model.set_priors({v: 0.0 for v in model.verdicts})
    meta, arrays = model.to_arrays()
    again = LaariModel.from_arrays(meta, arrays)
    np.testing.assert_allclose(again.predict_proba(docs), after, atol=1e-5)


def test_the_lexical_channel_counts_the_title_as_configured(taxonomy):
    docs = Documents(["Otsikko\n\nKuvaus tekstiä", "Pelkkä kuvaus"], titles=["Otsikko", ""])
    model = LaariModel(taxonomy.laari_ids, taxonomy.out_of_theme.id, taxonomy.tag_ids,
                       config=TrainingConfig(title_weight=3))
    assert model.lexical_texts(docs) == ["Otsikko\nOtsikko\nOtsikko\n\nKuvaus tekstiä", "Pelkkä kuvaus"]
    assert model.lexical_texts(Documents(docs.texts)) == docs.texts  # no titles known: the texts as they are
    model.config.title_weight = 1
    assert model.lexical_texts(docs) == docs.texts


def test_title_weight_is_saved_and_old_bundles_read_it_as_one(model):
    model.config.title_weight = 3
    try:
        meta, arrays = model.to_arrays()
    finally:
        model.config.title_weight = 1
    assert meta["config"]["title_weight"] == 3
    assert LaariModel.from_arrays(meta, arrays).config.title_weight == 3
    del meta["config"]["title_weight"]  # a bundle saved before the setting existed counted the title once
    assert LaariModel.from_arrays(meta, arrays).config.title_weight == 1


def test_title_weight_changes_what_the_lexical_channel_sees(small_train, taxonomy):
    """With titles given, the fitted vocabulary weights differ from a fit that counts the title once."""
    embedder = HashingEmbedder()
    texts = [document_text(t, d) for t, d in zip(small_train.titles, small_train.descriptions)]
    docs = Documents(texts, embedder.encode(texts), list(small_train.titles))
    probs = []
    for weight in (1, 4):
        m = LaariModel(taxonomy.laari_ids, taxonomy.out_of_theme.id, taxonomy.tag_ids,
                       config=TrainingConfig(channels=(LEXICAL,), folds=3, repeats=1, title_weight=weight))
        m.fit(docs, small_train.laari, small_train.tags)
        probs.append(m.predict_proba(docs.subset(range(5))))
    assert not np.allclose(probs[0], probs[1])


def test_the_model_is_a_scikit_learn_estimator(model, taxonomy):
    from sklearn.base import clone

    params = model.get_params()
    assert set(params) == {"laari_ids", "out_id", "tag_ids", "config"}
    fresh = clone(model)
    assert fresh.get_params()["laari_ids"] == model.laari_ids and fresh.config == model.config
    assert fresh.config is not model.config  # clone copies the parameters
    assert not fresh.router and model.router  # ... and none of what was learnt
    fresh.set_params(config=TrainingConfig(title_weight=2))
    assert fresh.config.title_weight == 2
    assert "LaariModel(" in repr(fresh)
