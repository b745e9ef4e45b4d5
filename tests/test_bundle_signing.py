"""Signed bundles: with LAARI_MODEL_SIGNING_KEY set, saving signs, and loading (predict, serve, reload) refuses an
unsigned or badly signed bundle by name; without the key nothing changes. The key never shows."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from classifier.bundle import SIGNATURE, BundleError, load_bundle, sign_bundle, verify_signature
from classifier.registry import Registry
from laari.cli import app as laari_app
from tests.conftest import HashingEmbedder
from tests.service_fixtures import ADMIN, copy_version, hashing_registry, make_client, service_predictor  # noqa: F401

KEY = "signing-key-for-tests-0123456789"


def flat(output: str) -> str:
    """The console wraps long lines; the words are what count."""
    return " ".join(output.split())


TEXT = "Työterveyshuolto ja esihenkilöt ottavat käyttöön varhaisen tuen mallin. Sairauspoissaolot vähenevät."


@pytest.fixture()
def registry(tmp_path, trained_bundle) -> Registry:
    reg = Registry(tmp_path / "models")
    copy_version(Path(trained_bundle.path), reg.root, "plain")
    reg.promote("plain")
    return reg


def test_without_a_key_nothing_changes(registry, monkeypatch):
    monkeypatch.delenv("LAARI_MODEL_SIGNING_KEY", raising=False)
    assert not (registry.path("plain") / SIGNATURE).exists()
    assert load_bundle(registry.path("plain")).version == "plain"


def test_a_key_refuses_an_unsigned_bundle_by_name(registry, monkeypatch):
    monkeypatch.setenv("LAARI_MODEL_SIGNING_KEY", KEY)
    with pytest.raises(BundleError, match=r"model plain \(.*\) is not signed.*laari models sign plain") as info:
        load_bundle(registry.path("plain"))
    assert KEY not in str(info.value)


def test_signed_bundle_loads_and_another_key_or_an_edit_is_refused(registry, monkeypatch):
    path = registry.sign("plain", SecretStr(KEY))
    signature = (path / SIGNATURE).read_text().strip()
    assert len(signature) == 64 and KEY not in signature
    assert load_bundle(path, signing=KEY).version == "plain"
    with pytest.raises(BundleError, match="model plain .*the signature does not match"):
        load_bundle(path, signing="another-key-0123456789")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["thresholds"] = {"edited": 0.0}  # a manifest edit the file hashes do not see
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="the signature does not match"):
        verify_signature(path, KEY)


def test_signing_verifies_the_files_first(registry):
    path = registry.path("plain")
    f = sorted((path / "arrays").glob("*.npy"))[0]
    f.write_bytes(f.read_bytes()[:-1] + b"\x00")
    with pytest.raises(BundleError, match="does not match its sha256"):
        sign_bundle(path, KEY)
    assert not (path / SIGNATURE).exists()


def test_training_with_a_key_writes_a_valid_signature(tmp_path, small_train, taxonomy, monkeypatch):
    from training.pipeline import train

    monkeypatch.setenv("LAARI_MODEL_SIGNING_KEY", KEY)
    result = train(small_train, taxonomy, None, registry=Registry(tmp_path), version="signed",
                   channels=("lexical",))
    assert (result.path / SIGNATURE).is_file()
    verify_signature(result.path, KEY)  # still valid after the version name was written into the manifest
    assert load_bundle(result.path).version == "signed"


def test_cli_sign_then_predict(registry, tmp_path, monkeypatch, small_train, taxonomy):
    from training.pipeline import train

    monkeypatch.delenv("LAARI_MODEL_SIGNING_KEY", raising=False)
    reg = Registry(tmp_path / "cli-models")
    train(small_train, taxonomy, None, registry=reg, version="lexv", channels=("lexical",))
    monkeypatch.setenv("LAARI_MODELS_DIR", str(reg.root))
    monkeypatch.setenv("LAARI_EMBEDDING_CACHE", "off")
    runner = CliRunner()
    monkeypatch.setenv("LAARI_MODEL_SIGNING_KEY", KEY)
    r = runner.invoke(laari_app, ["predict", TEXT])
    assert r.exit_code == 1 and "model lexv" in flat(r.output) and "is not signed" in flat(r.output), r.output
    assert KEY not in r.output
    r = runner.invoke(laari_app, ["models", "sign", "lexv"])
    assert r.exit_code == 0 and "signed model lexv" in r.output, r.output
    r = runner.invoke(laari_app, ["predict", TEXT])
    assert r.exit_code == 0 and "laari:" in r.output, r.output
    monkeypatch.setenv("LAARI_MODEL_SIGNING_KEY", "another-key-0123456789")
    r = runner.invoke(laari_app, ["predict", TEXT])
    assert r.exit_code == 1 and "signature does not match" in flat(r.output), r.output
    monkeypatch.delenv("LAARI_MODEL_SIGNING_KEY")
    r = runner.invoke(laari_app, ["models", "sign", "lexv"])
    assert r.exit_code == 1 and "LAARI_MODEL_SIGNING_KEY" in flat(r.output)


def test_service_reload_refuses_unsigned_and_serves_signed(make_client, registry, service_predictor, caplog):
    copy_version(registry.path("plain"), registry.root, "unsigned")
    copy_version(registry.path("plain"), registry.root, "signed")
    registry.sign("signed", KEY)
    with caplog.at_level(logging.DEBUG):
        c = make_client(models_dir=registry.root, model_signing_key=KEY)
        r = c.post("/v1/admin/reload", headers=ADMIN, json={"model": "unsigned"})
        assert r.status_code == 422 and "model unsigned" in r.json()["detail"] and "not signed" in r.json()["detail"]
        r = c.post("/v1/admin/reload", headers=ADMIN, json={"model": "signed"})
        assert r.status_code == 200 and r.json()["model_version"] == "signed", r.text
    settings = c.app.state.settings
    assert KEY not in repr(settings) and KEY not in str(settings)
    assert all(KEY not in rec.getMessage() for rec in caplog.records)


def test_serve_refuses_an_unsigned_current_model(registry, monkeypatch):
    from service.cli import register

    import typer

    cli = typer.Typer()
    register(cli)
    cli.command("noop")(lambda: None)  # a second command keeps `serve` a subcommand
    monkeypatch.setenv("LAARI_MODELS_DIR", str(registry.root))
    monkeypatch.setenv("LAARI_MODEL_SIGNING_KEY", KEY)
    r = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert r.exit_code == 1 and "model plain" in flat(r.output) and "is not signed" in flat(r.output), r.output
    assert KEY not in r.output


def test_hashing_embedder_still_matches(registry):
    # the signed copy serves the same model: signing adds a file, it changes no prediction
    from classifier.predictor import Predictor

    before = Predictor.load("plain", registry=registry, embedder=HashingEmbedder()).predict_one(TEXT).to_dict()
    registry.sign("plain", KEY)
    after = Predictor.load("plain", registry=registry, embedder=HashingEmbedder()).predict_one(TEXT).to_dict()
    assert before["laari_scores"] == after["laari_scores"]
    shutil.rmtree(registry.path("plain") / "arrays")
    with pytest.raises(BundleError):
        load_bundle(registry.path("plain"), signing=KEY)
