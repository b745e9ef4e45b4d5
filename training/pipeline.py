"""Training: labelled data -> embeddings (cached) -> LaariModel -> reference -> a bundle in the registry."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from classifier import __version__
from classifier.atomic import atomic_write_text, replace_folder
from classifier.bundle import read_manifest, save_bundle
from classifier.embedders import Embedder, TextKind
from classifier.explain import Reference
from classifier.heads import LinearHead
from classifier.model import EMBEDDING, LEXICAL, Documents, LaariModel, TrainingConfig
from classifier.registry import Registry
from classifier.taxonomy import Taxonomy
from classifier.text import document_text, normalize

from .datasets import LabelledSet

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_TRAIN = DATA_DIR / "train.jsonl"  # the written corpus: training split
DEFAULT_HELDOUT = DATA_DIR / "heldout.jsonl"  # the written corpus: held-out split
REGISTER_TRAIN = DATA_DIR / "register_train.jsonl"  # paraphrased register summaries: every choice is made on these
REGISTER_HELDOUT = DATA_DIR / "register_heldout.jsonl"  # ... and their held-out part
WRITTEN_REGISTER_STYLE = DATA_DIR / "written.jsonl"  # written in the register's style where the register is thin
DEFAULT_TRAINING_FILES = (REGISTER_TRAIN, WRITTEN_REGISTER_STYLE, DEFAULT_TRAIN)
DEFAULT_EVALUATION_FILES = (REGISTER_HELDOUT, DEFAULT_HELDOUT)
DEFAULT_WRITTEN_WEIGHT = 1.0  # weight of written rows beside register rows: chosen by benchmarks/real_text.py (CV)
DEFAULT_TITLE_WEIGHT = 1  # how many times the lexical channel counts a title: see benchmarks/real_text.py
ZERO_SHOT_SCALE = 50.0  # softmax sharpness over cosine similarities to the prototypes


@dataclass
class TrainResult:
    version: str
    path: Path
    manifest: dict
    seconds: float


def default_files(files) -> list[Path]:
    """Those of the bundled ``files`` that exist (a user's checkout may lack optional ones)."""
    return [p for p in files if p.exists()]


def load_files(paths, taxonomy: Taxonomy) -> LabelledSet:
    """One labelled set from several files, in order (a repeated id keeps its first row)."""
    from .datasets import load_labelled

    paths = list(paths)
    if not paths:
        raise ValueError("no labelled files given")
    data = load_labelled(paths[0], taxonomy)
    for extra in paths[1:]:
        data.extend(load_labelled(extra, taxonomy))
    data.source = ", ".join(str(p) for p in paths)
    return data


def data_hash(data: LabelledSet) -> str:
    h = hashlib.sha256()
    for row in zip(data.ids, data.titles, data.descriptions, data.laari, data.tags):
        h.update(json.dumps(row, ensure_ascii=False, sort_keys=True).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def library_versions() -> dict:
    """Installed versions of the libraries a model depends on (read from package metadata, nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"laari": __version__, "python": platform.python_version()}
    for name in ("numpy", "scipy", "scikit-learn", "sentence-transformers", "torch", "transformers", "simplemma"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _finish(registry: Registry, model: LaariModel, reference: Reference, taxonomy: Taxonomy, manifest: dict,
            version: str | None, promote: bool, started: float) -> TrainResult:
    """Save into a staging folder, name the version after the bundle hash unless given, move it into place."""
    registry.root.mkdir(parents=True, exist_ok=True)
    staging = registry.root / f".staging-{int(time.time() * 1000)}"
    full = save_bundle(staging, model, reference, taxonomy, manifest)
    if version is None:
        version = f"{datetime.now(timezone.utc):%Y%m%d}-{full['bundle_hash'][:8]}"
    target = registry.path(version)
    full["version"] = version
    atomic_write_text(staging / "manifest.json", json.dumps(full, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    replace_folder(staging, target)
    if promote:
        registry.promote(version)
    return TrainResult(version, target, read_manifest(target), time.time() - started)


def train(data: LabelledSet, taxonomy: Taxonomy, embedder: Embedder | None, *, registry: Registry | None = None,
          version: str | None = None, channels: tuple[str, ...] = (EMBEDDING, LEXICAL), analyzer: str = "lemma+char",
          seed: int = 0, promote: bool = True, progress: Callable[[str], None] | None = None,
          extra_manifest: dict | None = None, written_weight: float = DEFAULT_WRITTEN_WEIGHT,
          priors="selection", title_weight: int = DEFAULT_TITLE_WEIGHT) -> TrainResult:
    """Train a model on ``data`` and save it in the registry.

    When ``data`` holds register-derived rows (``source`` EURA...), every choice of the model is made by
    cross-validation over those rows alone, and the other rows (written ones, reviewers' corrections) join the
    training side of each fold with weight ``written_weight``. Without register rows, all rows are scored.
    """
    started = time.time()
    say = progress or (lambda msg: None)
    registry = registry or Registry()
    counts = {v: data.laari.count(v) for v in taxonomy.verdict_ids}
    missing = [v for v, c in counts.items() if c < 5]
    if missing:
        raise ValueError(f"too few training examples for {missing} (need at least 5 each for cross-validation); "
                         f"counts: {counts}")
    docs = [document_text(t, d) for t, d in zip(data.titles, data.descriptions)]
    use_embeddings = EMBEDDING in channels
    if use_embeddings and embedder is None:
        raise ValueError("the embedding channel needs an embedder")
    embeddings = None
    if use_embeddings:
        say(f"embedding {len(docs)} training texts")
        embeddings = embedder.encode(docs, TextKind.PASSAGE, progress=True)
    model = LaariModel(laari_ids=taxonomy.laari_ids, out_id=taxonomy.out_of_theme.id, tag_ids=taxonomy.tag_ids,
                       config=TrainingConfig(seed=seed, analyzer=analyzer, channels=tuple(channels), priors=priors,
                                             title_weight=title_weight))
    register = np.asarray(data.from_register, dtype=bool)
    select = register if register.any() else None
    weights = np.where(register, 1.0, written_weight) if register.any() else None
    documents = Documents(docs, embeddings, [normalize(t or "") for t in data.titles])
    model.fit(documents, data.laari, data.tags, progress=say, select=select, weights=weights)
    scored = register if register.any() else np.ones(len(data), dtype=bool)
    selection = {"rows": int(scored.sum()),
                 "what": "register-derived rows (source EURA...)" if register.any() else "all training rows",
                 "other_rows_weight": written_weight if register.any() else None,
                 "counts": {v: int(np.sum((np.asarray(data.laari) == v) & scored)) for v in taxonomy.verdict_ids}}
    if embeddings is not None:
        reference = Reference.build(data.ids, data.titles, data.laari, embeddings, EMBEDDING, model.verdicts)
    else:
        X = model.vectorizer.transform(model.lexical_texts(documents)).toarray()
        reference = Reference.build(data.ids, data.titles, data.laari, X, LEXICAL, model.verdicts)
    manifest = {
        "kind": "supervised",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "taxonomy_version": taxonomy.version,
        "training_data": {"source": data.source, "rows": len(data), "sha256": data_hash(data), "counts": counts},
        "embedder_id": embedder.id if use_embeddings else None,
        "channel_choice": model.channel_choice,
        "channels": {"candidates": list(channels), "embedding_weight_router": model.router_weight,
                     "embedding_weight_tagger": model.tagger_weight, "C": model.chosen_C, "analyzer": analyzer,
                     "title_weight": title_weight},
        "thresholds": {"out_of_theme": model.out_threshold, "temperature": model.temperature,
                       "tags": {t: float(v) for t, v in zip(model.tag_ids, model.tag_thresholds)}},
        "metrics": {"cv": model.cv},
        "selection": selection,
        "priors": {"shares": {v: round(float(p), 4) for v, p in zip(model.verdicts, model.priors)},
                   "strength": model.prior_strength, "setting": priors if isinstance(priors, str) else "given"},
        "seed": seed,
        "libraries": library_versions(),
    }
    manifest.update(extra_manifest or {})
    return _finish(registry, model, reference, taxonomy, manifest, version, promote, started)


def zero_shot(taxonomy: Taxonomy, embedder: Embedder, *, registry: Registry | None = None,
              version: str | None = None, promote: bool = True) -> TrainResult:
    """A prototype model from the taxonomy's descriptions alone: cosine similarity to each laari's and each tag's
    description (as e5 queries), sharpened by a fixed scale. No labelled data is used."""
    started = time.time()
    registry = registry or Registry()
    laari_texts = []
    for lid in taxonomy.verdict_ids:
        laari = taxonomy.laari(lid)
        laari_texts.append(" ".join([laari.name_fi, laari.description, *laari.include]))
    tag_texts = [f"{t.name_fi}. {t.description}" for t in taxonomy.tags]
    P = embedder.encode(laari_texts, TextKind.QUERY)
    T = embedder.encode(tag_texts, TextKind.QUERY)
    model = LaariModel(laari_ids=taxonomy.laari_ids, out_id=taxonomy.out_of_theme.id, tag_ids=taxonomy.tag_ids,
                       config=TrainingConfig(channels=(EMBEDDING,)))
    dim = P.shape[1]
    model.emb_mean = np.zeros(dim, dtype=np.float32)
    model.emb_scale = np.ones(dim, dtype=np.float32)
    model.router = {EMBEDDING: LinearHead(model.verdicts, P * ZERO_SHOT_SCALE, np.zeros(len(P), np.float32))}
    # a tag is on when the text is closer to the tag's description than that description is, on average, to the
    # laari descriptions: a bias from the prototypes themselves, not from labelled data
    bias = (T @ P.T).mean(axis=1)
    model.tagger = {EMBEDDING: LinearHead(model.tag_ids, T * ZERO_SHOT_SCALE, (-bias * ZERO_SHOT_SCALE).astype(np.float32),
                                          kind="sigmoid")}
    model.router_weight = model.tagger_weight = 1.0
    model.out_threshold = 0.5
    model.tag_thresholds = np.full(len(taxonomy.tag_ids), 0.5, dtype=np.float32)
    model.zero_shot = True
    reference = Reference.build(model.verdicts, [taxonomy.laari(v).name_fi for v in model.verdicts], model.verdicts,
                                P, EMBEDDING, model.verdicts)
    manifest = {
        "kind": "zero-shot",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "taxonomy_version": taxonomy.version,
        "training_data": None,
        "embedder_id": embedder.id,
        "channel_choice": EMBEDDING,
        "channels": {"candidates": [EMBEDDING], "scale": ZERO_SHOT_SCALE},
        "thresholds": {"out_of_theme": 0.5, "tags": {t: 0.5 for t in taxonomy.tag_ids}},
        "metrics": {},
        "libraries": library_versions(),
    }
    return _finish(registry, model, reference, taxonomy, manifest, version, promote, started)
