"""Fixtures for the service tests: predictors on small trained models (the hashing embedder, and a lexical-only
model that a separate process can load without any embedder), app and client factories, API keys."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from classifier.predictor import Predictor
from classifier.registry import Registry
from tests.conftest import HashingEmbedder

REVIEWER_KEY = "rev-key-0123456789"
ADMIN_KEY = "adm-key-9876543210"
KEYS = f"{REVIEWER_KEY}:reviewer,{ADMIN_KEY}:admin"
REVIEWER = {"X-API-Key": REVIEWER_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}

TEXT_WELLBEING = (
    "Hankkeessa kehitetään kotihoidon työyhteisöjen työhyvinvointia ja vähennetään kiireen aiheuttamaa "
    "kuormitusta. Esihenkilöt saavat valmennusta, ja henkilöstön jaksamista seurataan toistuvalla kyselyllä "
    "kolmella hyvinvointialueella.")
TEXT_DIGITAL = (
    "Hankkeessa pk-yritykset ottavat käyttöön tekoälyyn perustuvia työkaluja asiakaspalvelussa ja "
    "taloushallinnossa. Käyttöönoton yhteydessä seurataan tuottavuutta ja henkilöstön digikuormitusta. "
    "Robotiikka ja automaatio vapauttavat aikaa asiakastyöhön.")


def copy_version(src: Path, registry_root: Path, target: str) -> Path:
    """A registry version with the files of ``src`` (the manifest's version renamed; the files stay verified)."""
    dst = registry_root / target
    if not dst.exists():
        shutil.copytree(src, dst)
        manifest = json.loads((dst / "manifest.json").read_text(encoding="utf-8"))
        manifest["version"] = target
        (dst / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True),
                                           encoding="utf-8")
    return dst


@pytest.fixture(scope="session")
def hashing_registry(tmp_path_factory, trained_bundle) -> Registry:
    """A registry of its own holding the session's trained model as 'unit' (current) and 'unit-b'."""
    reg = Registry(tmp_path_factory.mktemp("service-registry"))
    for name in ("unit", "unit-b"):
        copy_version(Path(trained_bundle.path), reg.root, name)
    reg.promote("unit")
    return reg


@pytest.fixture(scope="session")
def service_predictor(hashing_registry) -> Predictor:
    return Predictor.load("unit", registry=hashing_registry, embedder=HashingEmbedder())


@pytest.fixture(scope="session")
def lexical_registry(tmp_path_factory, small_train, taxonomy) -> Registry:
    """A lexical-only model: loads in any process without an embedding model."""
    from training.pipeline import train

    reg = Registry(tmp_path_factory.mktemp("lexical-registry"))
    train(small_train, taxonomy, None, registry=reg, version="lex", channels=("lexical",))
    return reg


def make_settings(tmp_path: Path, registry: Registry, **overrides):
    from service.settings import Settings

    values = dict(api_keys=KEYS, models_dir=registry.root, feedback_url=str(tmp_path / "feedback.sqlite"),
                  batch_wait_ms=2.0)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture()
def make_client(tmp_path, hashing_registry, service_predictor):
    """make_client(**settings) -> a started TestClient on the hashing model (closed after the test)."""
    from fastapi.testclient import TestClient

    from service.app import create_app

    clients = []

    def factory(predictor=service_predictor, **overrides):
        app = create_app(make_settings(tmp_path, hashing_registry, **overrides), predictor)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture()
def client(make_client):
    return make_client()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command() -> list[str]:
    """`laari serve` when training/cli.py registers it, else the same command through `python -m service`."""
    import sys

    from laari.cli import app

    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    if "serve" in names:
        return [sys.executable, "-c", "from laari.cli import main; main()", "serve"]
    return [sys.executable, "-m", "service"]


class LiveServer:
    def __init__(self, url: str, proc, log_path: Path, feedback_path: Path):
        self.url, self.proc, self.log_path, self.feedback_path = url, proc, log_path, feedback_path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, lexical_registry):
    """A real `laari serve` process on a loopback port, serving the lexical model; stopped with SIGINT."""
    import os
    import signal
    import subprocess
    import time

    import httpx

    tmp = tmp_path_factory.mktemp("live")
    port = free_port()
    env = dict(os.environ, LAARI_MODELS_DIR=str(lexical_registry.root), LAARI_API_KEYS=KEYS,
               LAARI_FEEDBACK_URL=str(tmp / "feedback.sqlite"), LAARI_EMBEDDING_CACHE="off",
               LAARI_PREDICT_OPEN="true")
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(serve_command() + ["--host", "127.0.0.1", "--port", str(port)],
                                cwd=Path(__file__).resolve().parent.parent, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    server = LiveServer(url, proc, log_path, tmp / "feedback.sqlite")
    deadline = time.time() + 90
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"laari serve exited with {proc.returncode}:\n{server.log()}")
            try:
                if httpx.get(url + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"laari serve not ready in 90 s:\n{server.log()}")
            time.sleep(0.3)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
