import json

import numpy as np
import pytest

from classifier.lexical import (CHAR_PREFIX, LEMMA_PREFIX, LexicalVectorizer, _CHAR, _lemma, analyze, lemma_groups,
                                lemma_terms, word_contributions)
from classifier.text import words
from training.pipeline import DEFAULT_TRAIN

TEXTS = [
    "Työterveyshuollon ja esihenkilöiden yhteistyö varhaisen tuen mallissa vähentää sairauspoissaoloja.",
    "Pk-yrityksissä otetaan käyttöön tekoälyä ja ohjelmistorobotiikkaa tuottavuuden parantamiseksi.",
    "Henkilöstön osaamista kehitetään mikro-opinnoilla ja työssä oppimisella pk-yrityksissä.",
    "Työhyvinvointia ja työssä jaksamista tuetaan työyhteisövalmennuksella kotihoidossa.",
]
ODD = ["a b  c\td ééé İstanbul 𝔘nicode x", "ab", "abcdefgh ij k", "ä", "", "   ", "Pk-yritys pk-yritys PK-YRITYS"]


def corpus_texts(n=None):
    recs = [json.loads(line) for f in ("train.jsonl", "heldout.jsonl")
            for line in (DEFAULT_TRAIN.parent / f).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [f"{r['title']}\n\n{r['description']}" for r in recs][:n]


def reference_transform(vec, texts):
    """TF-IDF rows straight from ``analyze``, the training path: sublinear tf x idf, unit rows."""
    X = np.zeros((len(texts), len(vec.vocabulary)))
    for r, text in enumerate(texts):
        counts = {}
        for term in analyze(vec.analyzer, text):
            j = vec.vocabulary.get(term)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        for j, c in counts.items():
            X[r, j] = (1 + np.log(c)) * vec.idf[j]
        X[r] /= max(np.linalg.norm(X[r]), 1e-12)
    return X


def reference_contributions(text, vec, x, w):
    """Each feature's tf-idf x weight, spread over the words it comes from, written out word by word."""
    contrib, lemma_owner, char_owners = {}, {}, {}
    if "lemma" in vec.analyzer:
        for lemma, terms in lemma_groups(text):
            for term in terms:
                j = vec.vocabulary.get(LEMMA_PREFIX + term)
                if j is not None:
                    lemma_owner.setdefault(j, lemma)
    if "char" in vec.analyzer:
        for token in text.lower().split():
            ws = words(token)
            owner = _lemma(ws[0]) if ws else token
            for g in set(_CHAR(token)):
                j = vec.vocabulary.get(CHAR_PREFIX + g)
                if j is not None:
                    char_owners.setdefault(j, []).append(owner)
    for j, lemma in lemma_owner.items():
        contrib[lemma] = contrib.get(lemma, 0.0) + x[j] * w[j]
    for j, owners in char_owners.items():
        for owner in owners:
            contrib[owner] = contrib.get(owner, 0.0) + x[j] * w[j] / len(owners)
    return contrib


def test_lemmas_split_hyphenated_compounds_and_drop_stopwords():
    terms = lemma_terms("Pk-yrityksissä ja työterveyshuollon palveluissa")
    assert "työterveyshuolto" in terms and "pk-yritys" in terms and "yritys" in terms
    assert "ja" not in terms


def test_unknown_analyzer_is_refused():
    with pytest.raises(ValueError, match="unknown analyzer"):
        analyze("voikko-typo", "teksti")


@pytest.mark.parametrize("analyzer", ["char", "lemma", "lemma+char"])
def test_transform_matches_fit_transform_and_survives_serialisation(analyzer):
    vec = LexicalVectorizer(analyzer=analyzer, min_df=1)
    X = vec.fit_transform(TEXTS)
    meta, arrays = vec.to_arrays()
    again = LexicalVectorizer.from_arrays(meta, arrays)
    X2 = again.transform(TEXTS)
    assert X.shape == X2.shape
    assert np.abs((X - X2).toarray()).max() < 1e-5


@pytest.mark.parametrize("analyzer", ["char", "lemma", "lemma+char"])
def test_batch_transform_equals_the_training_analyzer_on_the_corpus(analyzer):
    texts = corpus_texts(150) + ODD + TEXTS
    vec = LexicalVectorizer(analyzer=analyzer)
    vec.fit_transform(texts[:100])
    X = vec.transform(texts).toarray()
    assert np.abs(X - reference_transform(vec, texts)).max() < 1e-5
    assert np.count_nonzero(X[100:150]) > 0  # unseen texts share features with the fitted ones
    # one text at a time gives the same rows as the whole batch
    assert np.abs(vec.transform(texts[120:121]).toarray() - X[120:121]).max() < 1e-6


def test_word_contributions_add_up_to_the_linear_score():
    vec = LexicalVectorizer(analyzer="lemma+char", min_df=1)
    X = vec.fit_transform(TEXTS)
    rng = np.random.default_rng(0)
    w = rng.normal(size=X.shape[1])
    contrib = word_contributions(TEXTS[0], vec, w)
    assert abs(sum(contrib.values()) - float(X[0].toarray().ravel() @ w)) < 1e-4
    assert "työterveyshuolto" in contrib


@pytest.mark.parametrize("analyzer", ["char", "lemma", "lemma+char"])
def test_batch_attribution_equals_word_by_word_spreading(analyzer):
    texts = corpus_texts(60) + ODD
    vec = LexicalVectorizer(analyzer=analyzer)
    vec.fit_transform(corpus_texts(150))
    rng = np.random.default_rng(1)
    W = rng.normal(size=(3, len(vec.vocabulary)))
    choice = rng.integers(0, 3, size=len(texts))
    analysis = vec.analyse(texts)
    shares = analysis.per_word(W)
    X = analysis.X.toarray()
    for r, text in enumerate(texts):
        lo, hi = analysis.word_range(r)
        got = {analysis.word_names[analysis.word_ids[g]]: shares[g, choice[r]] for g in range(lo, hi)}
        want = reference_contributions(text, vec, X[r], W[choice[r]])
        assert set(got) == set(want), r
        assert max((abs(got[k] - want[k]) for k in want), default=0) < 1e-6
        assert abs(sum(got.values()) - X[r] @ W[choice[r]]) < 1e-5


def test_top_words_rank_positive_then_negative():
    vec = LexicalVectorizer(analyzer="lemma+char", min_df=1)
    vec.fit_transform(TEXTS)
    w = np.zeros(len(vec.vocabulary))
    w[vec.vocabulary[LEMMA_PREFIX + "työterveyshuolto"]] = 2.0
    w[vec.vocabulary[LEMMA_PREFIX + "sairauspoissaolo"]] = -1.0
    analysis = vec.analyse(TEXTS[:1])
    top = analysis.top_words(0, analysis.per_word(w))
    assert [t["term"] for t in top] == ["työterveyshuolto", "sairauspoissaolo"]
    assert top[0]["weight"] > 0 > top[1]["weight"]
