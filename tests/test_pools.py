"""Pool statistics are computed once (``classifier.pools``): the brute-force figures, and the service's
``/v1/laarit`` statistics agreeing with ``laari report`` on the same projects and vectors."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.pools import map_2d, nearest_pools, pool_geometry, prepare_space
from service.pools import compute_pools
from tests.batch_fixtures import HashingFactory
from training.pool_report import PoolData, compute_report


def test_nearest_pool_and_separation_by_brute_force():
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(loc=c, size=(n, 8)) for c, n in ((0.0, 12), (0.6, 9), (2.5, 15))])
    y = np.array(["a"] * 12 + ["b"] * 9 + ["c"] * 15)
    Z = prepare_space(X)
    pools = ["a", "b", "c"]
    near = nearest_pools(pool_geometry(Z, y, pools), pools)

    def mean_sim(p, q):
        S = Z[y == p] @ Z[y == q].T
        return (S.sum() - np.trace(S)) / (S.size - len(S)) if p == q else S.mean()

    for p in pools:
        between = {q: mean_sim(p, q) for q in pools if q != p}
        best = max(between, key=between.get)
        assert near[p]["nearest"] == best
        assert near[p]["separation"] == pytest.approx(mean_sim(p, p) - between[best], abs=1e-4)


def test_map_is_deterministic_and_spread():
    rng = np.random.default_rng(0)
    Z = prepare_space(rng.normal(size=(40, 6)))
    a, method, info = map_2d(Z)
    b, _, _ = map_2d(Z)
    assert method == "pca" and np.array_equal(a, b) and len({tuple(p) for p in a.round(6)}) == 40
    assert 0 < sum(info["explained_variance"]) <= 1


def test_service_and_report_give_the_same_nearest_pool(trained_bundle):
    predictor = HashingFactory(str(trained_bundle.path))()
    tax = predictor.taxonomy
    ref = predictor.reference
    served = compute_pools(predictor).laarit
    data = PoolData(ids=ref.ids, titles=ref.titles, texts=ref.titles, labels=list(ref.labels),
                    vectors=np.asarray(ref.vectors), space=ref.space, source="reference", kind="labelled data")
    report = {b["id"]: b for b in compute_report(data, pools=tax.laari_ids, out_id=tax.out_of_theme.id,
                                                 taxonomy=tax)["pools"]}
    assert set(report) == {lid for lid, s in served.items() if s["size"]}
    for lid, block in report.items():
        nearest = served[lid]["nearest"]
        assert nearest["laari"] == block["nearest"], lid
        assert nearest["separation"] == pytest.approx(block["separation"], abs=1e-4)
        assert nearest["centroid_similarity"] == pytest.approx(block["centroid_similarity_to_nearest"], abs=1e-4)
