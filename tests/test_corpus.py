"""The bundled corpus: labels against the taxonomy, the counts the data card promises, the no-template rule and
the held-out split."""

import itertools
import re
import statistics
from collections import Counter

import pytest

from classifier.tables import iter_records
from training.pipeline import DEFAULT_HELDOUT, DEFAULT_TRAIN

WORD = re.compile(r"\w+(?:[-']\w+)*")


@pytest.fixture(scope="module")
def rows():
    train = [r for _, r in iter_records(DEFAULT_TRAIN)]
    held = [r for _, r in iter_records(DEFAULT_HELDOUT)]
    for r in train:
        r["_split"] = "train"
    for r in held:
        r["_split"] = "heldout"
    return train + held


def words(text):
    return WORD.findall(text.lower())


def test_every_label_tag_and_facet_is_in_the_taxonomy(rows, taxonomy):
    kohderyhma = set(taxonomy.facet("kohderyhma").value_ids())
    approach = set(taxonomy.facet("lahestymistapa").value_ids())
    for r in rows:
        assert set(r) <= {"id", "title", "description", "laari", "tags", "kohderyhma", "lahestymistapa", "note",
                          "_split"}, r["id"]
        assert r["laari"] in taxonomy.verdict_ids, r["id"]
        assert set(r["tags"]) <= set(taxonomy.tag_ids), r["id"]
        assert len(r["tags"]) == len(set(r["tags"])), r["id"]
        assert set(r.get("kohderyhma", [])) <= kohderyhma, r["id"]
        assert r.get("lahestymistapa", "reaktiivinen") in approach, r["id"]
        assert r["title"].strip() and r["description"].strip(), r["id"]


def test_counts(rows, taxonomy):
    assert len(rows) >= 600
    per_laari = Counter(r["laari"] for r in rows)
    for v in taxonomy.verdict_ids:
        assert per_laari[v] >= 90, (v, per_laari[v])
    per_tag = Counter(t for r in rows for t in r["tags"])
    for t in taxonomy.tag_ids:
        assert per_tag[t] >= 60, (t, per_tag[t])
    assert len({r["id"] for r in rows}) == len(rows)


def test_lengths_and_short_entries(rows):
    counts = [len(words(r["description"])) for r in rows]
    assert max(counts) <= 450
    assert statistics.median(counts) >= 120
    short = [r for r, n in zip(rows, counts) if n < 60]
    assert len(short) >= 40
    for r in short:  # the short ones are a title and two sentences
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", r["description"].strip()) if s]
        assert len(sentences) <= 3, r["id"]
        assert len(words(r["description"])) >= 20, r["id"]


def test_hard_cases(rows, taxonomy):
    in_theme = [r for r in rows if r["laari"] != taxonomy.out_of_theme.id]
    boundary = [r for r in in_theme if r.get("note")]
    assert len(boundary) >= 0.25 * len(in_theme)
    multi = [r for r in in_theme if len(r["tags"]) >= 2]
    assert len(multi) >= 0.25 * len(in_theme)


def test_no_templates(rows):
    """No pair shares more than 40% of word 5-gram shingles; no sentence of 8+ words is in two descriptions."""
    shingles = []
    for r in rows:
        w = words(r["description"])
        shingles.append({tuple(w[i : i + 5]) for i in range(len(w) - 4)})
    # index shingles so that only pairs sharing something are compared
    owners = {}
    for i, sh in enumerate(shingles):
        for s in sh:
            owners.setdefault(s, []).append(i)
    shared = Counter()
    for ids in owners.values():
        if len(ids) > 1:
            shared.update(itertools.combinations(ids, 2))
    worst = 0.0
    for (a, b), inter in shared.items():
        jaccard = inter / len(shingles[a] | shingles[b])
        worst = max(worst, jaccard)
        assert jaccard <= 0.40, (rows[a]["id"], rows[b]["id"], jaccard)
    seen = {}
    for r in rows:
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", r["description"]):
            w = words(sentence)
            if len(w) >= 8:
                key = " ".join(w)
                assert seen.setdefault(key, r["id"]) == r["id"], (key, seen[key], r["id"])


def test_heldout_split_is_stratified_and_disjoint(rows, taxonomy):
    train_ids = {r["id"] for r in rows if r["_split"] == "train"}
    held_ids = {r["id"] for r in rows if r["_split"] == "heldout"}
    assert not train_ids & held_ids
    assert len(held_ids) >= 0.2 * len(rows)
    for v in taxonomy.verdict_ids:
        total = sum(r["laari"] == v for r in rows)
        held = sum(r["laari"] == v and r["_split"] == "heldout" for r in rows)
        assert held >= 0.2 * total, (v, held, total)
    train_texts = {r["description"] for r in rows if r["_split"] == "train"}
    assert not any(r["description"] in train_texts for r in rows if r["_split"] == "heldout")
