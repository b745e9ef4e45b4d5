import json

import numpy as np
import pytest

from classifier.bundle import BundleError, load_bundle, verify_bundle
from classifier.registry import Registry
from training.pipeline import train
from tests.conftest import HashingEmbedder


def test_round_trip_and_manifest(trained_bundle, taxonomy):
    b = load_bundle(trained_bundle.path)
    m = b.manifest
    for key in ("version", "created", "taxonomy_hash", "training_data", "embedder_id", "channel_choice",
                "thresholds", "metrics", "libraries", "bundle_hash", "files"):
        assert key in m, key
    assert m["taxonomy_hash"] == taxonomy.content_hash()
    assert m["embedder_id"] == HashingEmbedder.id
    assert not any(name.endswith((".pkl", ".pickle", ".joblib")) for name in m["files"])
    assert b.taxonomy.verdict_ids == taxonomy.verdict_ids


def test_same_data_gives_the_same_bundle_hash(tmp_path, small_train, taxonomy, trained_bundle):
    again = train(small_train, taxonomy, HashingEmbedder(), registry=Registry(tmp_path), version="again")
    assert again.manifest["bundle_hash"] == trained_bundle.manifest["bundle_hash"]


def copy_bundle(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_tampered_array_is_refused(trained_bundle, tmp_path):
    path = copy_bundle(trained_bundle.path, tmp_path / "m")
    f = sorted((path / "arrays").glob("router.*coef.npy"))[0]
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=f"{f.name} does not match its sha256"):
        load_bundle(path)


def test_foreign_file_is_refused(trained_bundle, tmp_path):
    path = copy_bundle(trained_bundle.path, tmp_path / "m")
    np.save(path / "arrays" / "evil.npy", np.zeros(3))
    with pytest.raises(BundleError, match="not listed in the manifest"):
        verify_bundle(path)


def test_edited_manifest_file_list_is_refused(trained_bundle, tmp_path):
    path = copy_bundle(trained_bundle.path, tmp_path / "m")
    manifest = json.loads((path / "manifest.json").read_text())
    victim = sorted(manifest["files"])[0]
    manifest["files"][victim] = "0" * 64
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError):
        verify_bundle(path)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(BundleError, match="not a model folder"):
        load_bundle(tmp_path)


def test_registry_list_promote_and_current(tmp_path, trained_bundle):
    reg = Registry(tmp_path)
    assert reg.current() is None
    with pytest.raises(BundleError, match="no current model"):
        reg.current_path()
    copy_bundle(trained_bundle.path, tmp_path / "v1")
    copy_bundle(trained_bundle.path, tmp_path / "v2")
    assert reg.versions() == ["v1", "v2"]
    reg.promote("v2")
    assert reg.current() == "v2"
    assert [r["current"] for r in reg.list()] == [False, True]
    with pytest.raises(BundleError, match="no model version 'v3'"):
        reg.promote("v3")
    with pytest.raises(BundleError, match="invalid model version"):
        reg.path("../etc")
