import numpy as np
import pytest

from classifier.lexical import LexicalVectorizer, analyze, lemma_terms, word_contributions

TEXTS = [
    "Työterveyshuollon ja esihenkilöiden yhteistyö varhaisen tuen mallissa vähentää sairauspoissaoloja.",
    "Pk-yrityksissä otetaan käyttöön tekoälyä ja ohjelmistorobotiikkaa tuottavuuden parantamiseksi.",
    "Henkilöstön osaamista kehitetään mikro-opinnoilla ja työssä oppimisella pk-yrityksissä.",
    "Työhyvinvointia ja työssä jaksamista tuetaan työyhteisövalmennuksella kotihoidossa.",
]


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


def test_word_contributions_add_up_to_the_linear_score():
    vec = LexicalVectorizer(analyzer="lemma+char", min_df=1)
    X = vec.fit_transform(TEXTS)
    rng = np.random.default_rng(0)
    w = rng.normal(size=X.shape[1])
    contrib = word_contributions(TEXTS[0], vec.analyzer, vec.vocabulary, X[0], w)
    assert abs(sum(contrib.values()) - float(X[0].toarray().ravel() @ w)) < 1e-4
    assert "työterveyshuolto" in contrib
