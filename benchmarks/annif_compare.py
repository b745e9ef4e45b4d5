#!/usr/bin/env python3
"""Side-by-side benchmark against Annif, the National Library of Finland's subject indexer.

    .venv/bin/python benchmarks/annif_compare.py [--backends tfidf,svc,omikuji] [--quick]

Annif gets the same two tasks as laari, each as an Annif project with its own vocabulary:

* ``laari``: 6 subjects (the five laarit and ``ei_teemassa``); the verdict is Annif's top-1 subject.
* ``tags``: 8 subjects; a project gets every tag whose Annif score is >= one global threshold per backend and
  analyzer. The threshold is chosen by k-fold cross-validation on the TRAINING split only (train Annif on k-1
  folds, suggest for the held-out fold, pool the out-of-fold scores, pick the cut that maximises tag micro-F1).
  Nothing is tuned on the held-out split or on the real sample.

Annif is trained on the training split (title + description) and scored with laari's own metric function
``training.evaluate.score`` on the held-out split and on the real sample (``../shared/real-sample``, never
trained on). The fit score for the out-of-theme AUROC is 1 - Annif's score for ``ei_teemassa``.

Annif lives in its own virtualenv (it pins its own scikit-learn and numpy), created on first use at
``${LAARI_HOME:-~/.cache/laari}/annif-venv`` with ``python3 -m venv`` and ``pip install annif[omikuji,voikko]``.
Annif's analyzers tokenize with NLTK's ``punkt_tab`` data, which NLTK would try to download; the script points
``NLTK_DATA`` at ``${LAARI_HOME}/nltk_data`` with empty parameter files (plain Punkt rules, no abbreviation
lists) so that everything runs offline. The same file is also the worker that runs inside the Annif venv
(``--worker JOB RESULT``, internal); its top level uses the standard library only.

Caveats: Annif's svc backend trains on ONE subject per document (for multi-tag documents Annif keeps one of the
tags), so its tag scores are a weak baseline by construction; omikuji's tree clustering is randomised (no seed is
exposed), so its figures move by about +-0.01 between runs; tfidf and svc are deterministic.

Output: a Markdown table on stdout, ``benchmarks/results/annif.json`` (full metrics, per-label figures,
confusion matrices, thresholds, timings, versions and data hashes). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "annif.json"
DEFAULT_REAL_SAMPLE = REPO.parent / "shared" / "real-sample" / "projects.jsonl"
DATA = REPO / "training" / "data"
# the same files laari trains and is evaluated on by default (training/pipeline.py)
TRAIN_FILES = [DATA / "register_train.jsonl", DATA / "written.jsonl", DATA / "train.jsonl"]
HELDOUT_FILES = [DATA / "register_heldout.jsonl", DATA / "heldout.jsonl"]

ANNIF_VERSION = "1.4.3"
ANNIF_SPEC = os.environ.get("LAARI_ANNIF_SPEC", f"annif[omikuji,voikko]=={ANNIF_VERSION}")
BACKENDS = ("tfidf", "svc", "omikuji")
# Annif analyzer specs. voikko needs the system libraries libvoikko1 and voikko-fi (Debian: apt-get install
# libvoikko1 voikko-fi); the pip package only wraps them.
ANALYZERS = {"snowball": "snowball(finnish)", "voikko": "voikko(fi)"}
# Backend parameters beyond Annif's defaults: none, apart from `limit` (every subject is returned with its score,
# so the decision rule sees all of them).
BACKEND_PARAMS: dict[str, dict[str, str]] = {"tfidf": {}, "svc": {}, "omikuji": {}}
URI = "http://example.org/{task}/{id}"
LANGUAGE = "fi"
SEED = 20240611
PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")
# NLTK's word_tokenize, which Annif calls without a language, loads the English parameters; Finnish is there for
# callers that ask for it. Both are empty: Punkt's built-in rules only.
PUNKT_LANGUAGES = ("english", "finnish")


class BenchmarkError(RuntimeError):
    """A problem the user can fix; printed without a traceback."""


def log(msg: str) -> None:
    print(f"[annif_compare] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# Environment: Annif virtualenv and offline NLTK data
# ----------------------------------------------------------------------------------------------------------------

def laari_home() -> Path:
    return Path(os.environ.get("LAARI_HOME") or Path.home() / ".cache" / "laari").expanduser()


def _probe_annif(py: Path) -> str | None:
    """Annif's version if ``py`` can import annif and omikuji, else None."""
    if not py.exists():
        return None
    code = "import importlib.metadata as m, annif, omikuji; print(m.version('annif'))"
    try:
        res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip().splitlines()[-1] if res.returncode == 0 and res.stdout.strip() else None


def _base_python() -> str:
    base = shutil.which("python3")
    if base is None:
        raise BenchmarkError("python3 not found on PATH; it is needed to create the Annif virtualenv")
    res = subprocess.run([base, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                         text=True)
    major, minor = (int(x) for x in res.stdout.strip().split("."))
    if not (3, 10) <= (major, minor) < (3, 14):
        raise BenchmarkError(f"{base} is Python {major}.{minor}; Annif {ANNIF_VERSION} needs 3.10 to 3.13")
    return base


def ensure_annif_venv(home: Path) -> tuple[Path, str]:
    """Create (or repair) the Annif virtualenv; returns (python path, Annif version). Safe to run concurrently."""
    import fcntl

    venv = home / "annif-venv"
    py = venv / "bin" / "python"
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "annif-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        version = _probe_annif(py)
        wanted = ANNIF_SPEC.split("==", 1)[1] if "==" in ANNIF_SPEC else None
        if version and (wanted is None or version == wanted):
            return py, version
        if version:
            log(f"Annif {version} in {venv}, {ANNIF_SPEC} wanted: reinstalling")
        elif venv.exists():
            log(f"{venv} exists but cannot import annif/omikuji: recreating it")
            shutil.rmtree(venv)
        if not venv.exists():
            base = _base_python()
            log(f"creating {venv} with {base} -m venv (one-off, about 2 minutes)")
            res = subprocess.run([base, "-m", "venv", str(venv)])
            if res.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise BenchmarkError(f"`{base} -m venv {venv}` failed (exit {res.returncode}); on Debian the "
                                     f"python3-venv package provides it")
        log(f"pip install {ANNIF_SPEC} into {venv}")
        res = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              ANNIF_SPEC])
        version = _probe_annif(py) if res.returncode == 0 else None
        if not version:
            shutil.rmtree(venv, ignore_errors=True)
            raise BenchmarkError(f"could not install {ANNIF_SPEC!r} into {venv} (pip exit {res.returncode}; see its "
                                 f"output above). PyPI must be reachable; the partial venv was removed.")
        return py, version


def ensure_nltk_data(home: Path) -> Path:
    """Empty punkt_tab parameter files, so that NLTK never tries to download them."""
    root = home / "nltk_data"
    for lang in PUNKT_LANGUAGES:
        d = root / "tokenizers" / "punkt_tab" / lang
        d.mkdir(parents=True, exist_ok=True)
        for name in PUNKT_FILES:
            (d / name).touch(exist_ok=True)
    return root


# ----------------------------------------------------------------------------------------------------------------
# Data, folds and Annif configuration (main process, laari's venv)
# ----------------------------------------------------------------------------------------------------------------

def doc_text(title: str, description: str) -> str:
    title, description = (title or "").strip(), (description or "").strip()
    return f"{title}\n\n{description}" if title else description


def make_folds(labels: list[str], k: int, seed: int = SEED) -> list[int]:
    """Fold number per row, stratified by laari, reproducible for a given seed and row order."""
    order = list(range(len(labels)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda i: labels[i])  # stable: shuffled within each laari
    folds = [0] * len(labels)
    for pos, i in enumerate(order):
        folds[i] = pos % k
    return folds


def project_id(task: str, backend: str, analyzer: str, part: str) -> str:
    return f"{task}-{backend}-{analyzer}-{part}"


def write_annif_config(workdir: Path, taxonomy, combos: list[tuple[str, str]], folds: int) -> dict:
    """Vocabulary TSVs and projects.cfg; returns the part of the worker job that describes them."""
    vocabs = {
        "laari": [(v, taxonomy.laari(v).name_fi) for v in taxonomy.verdict_ids],
        "tags": [(t, taxonomy.tag(t).name_fi) for t in taxonomy.tag_ids],
    }
    vocab_files = {}
    for task, items in vocabs.items():
        path = workdir / f"vocab-{task}.tsv"
        path.write_text("".join(f"<{URI.format(task=task, id=i)}>\t{label}\n" for i, label in items),
                        encoding="utf-8")
        vocab_files[task] = str(path)
    lines = []
    for backend, analyzer in combos:
        for task, items in vocabs.items():
            parts = ["full"] + ([f"f{i}" for i in range(folds)] if task == "tags" else [])
            for part in parts:
                params = {"name": f"{task} {backend} {analyzer} {part}", "language": LANGUAGE, "backend": backend,
                          "analyzer": ANALYZERS[analyzer], "vocab": task, "limit": str(len(items)),
                          **BACKEND_PARAMS[backend]}
                lines.append(f"[{project_id(task, backend, analyzer, part)}]")
                lines += [f"{k}={v}" for k, v in params.items()]
                lines.append("")
    (workdir / "projects.cfg").write_text("\n".join(lines), encoding="utf-8")
    return {"vocab_files": vocab_files, "labels": {task: [i for i, _ in items] for task, items in vocabs.items()}}


def best_threshold(scores, gold) -> dict:
    """Global threshold on pooled out-of-fold tag scores that maximises micro-F1 (predict score >= t).

    Every distinct score is a candidate cut; the threshold reported is the midpoint between the best cut and the
    next lower distinct score, so that it does not sit exactly on a training score. Ties: the higher cut wins."""
    import numpy as np

    s = np.asarray(scores, dtype=float).ravel()
    g = np.asarray(gold, dtype=int).ravel()
    n_pos = int(g.sum())
    order = np.argsort(-s, kind="stable")
    s_sorted, g_sorted = s[order], g[order]
    tp = np.cumsum(g_sorted)
    k = np.arange(1, len(s) + 1)
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # the last position of each run of equal scores
    cand = np.flatnonzero(last & (s_sorted > 0))  # a score of 0 means "not suggested": never a tag
    if not len(cand) or n_pos == 0:
        return {"threshold": 1.0, "cv_micro_f1": 0.0}
    f1 = 2 * tp[cand] / (k[cand] + n_pos)
    best = int(cand[int(np.argmax(f1))])
    cut = float(s_sorted[best])
    lower = s_sorted[best + 1:]
    lower = lower[lower < cut]
    nxt = float(lower[0]) if len(lower) else 0.0
    return {"threshold": round((cut + nxt) / 2, 6), "cv_micro_f1": round(float(f1.max()), 4),
            "cv_predicted_tags": int(k[best]), "cv_gold_tags": n_pos}


# ----------------------------------------------------------------------------------------------------------------
# Worker: runs inside the Annif venv, standard library + Annif only
# ----------------------------------------------------------------------------------------------------------------

def worker(job_path: str, result_path: str) -> int:
    import logging

    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    import annif

    annif.logger.setLevel(logging.DEBUG if job.get("verbose") else logging.ERROR)
    import annif.registry
    import annif.vocab
    from annif.corpus import Document, DocumentList, SubjectSet

    if any(a == "voikko" for _, a in job["combos"]):
        try:
            import voikko.libvoikko
        except ImportError:
            print(f"ERROR: the voikko analyzer needs the voikko package in {sys.prefix} (pip install voikko)",
                  file=sys.stderr)
            return 3
        try:
            voikko.libvoikko.Voikko("fi").terminate()
        except Exception as exc:  # OSError (no libvoikko) or VoikkoException (no Finnish dictionary)
            print(f"ERROR: the voikko analyzer needs libvoikko and its Finnish dictionary (Debian: apt-get install "
                  f"libvoikko1 voikko-fi): {exc}", file=sys.stderr)
            return 3

    # Progress lines go to the original stdout, which the main process shows; anything else written to fd 1
    # (omikuji's native logger and progress bars) joins stderr, which the main process keeps in a log file.
    progress = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    sys.stdout.flush()
    os.dup2(2, 1)

    def wlog(msg):
        print(f"[annif worker] {msg}", file=progress, flush=True)

    labels = job["labels"]
    docs = job["docs"]
    app = annif.create_flask_app()
    import importlib.metadata as md

    out = {"combos": {}, "versions": {p: md.version(p) for p in ("annif", "scikit-learn", "omikuji", "nltk", "numpy")}}
    out["versions"]["python"] = sys.version.split()[0]
    with app.app_context():
        projects = annif.registry.get_projects()
        for task, path in job["vocab_files"].items():
            proj = next(p for p in projects.values() if p.vocab_spec == task)
            proj.vocab.load_vocabulary(annif.vocab.VocabFileTSV(path, job["language"]), force=True)

        def columns(proj, task):
            subjects = proj.subjects
            cols = [subjects.by_uri(URI.format(task=task, id=lab)) for lab in labels[task]]
            if any(c is None for c in cols):
                raise RuntimeError(f"{proj.project_id}: vocabulary lacks some of {labels[task]}")
            return cols

        def train(pid, task, rows):
            proj = annif.registry.get_project(pid)
            cols = columns(proj, task)
            index = {lab: c for lab, c in zip(labels[task], cols)}
            corpus = []
            for r in rows:
                gold = [r["laari"]] if task == "laari" else r["tags"]
                corpus.append(Document(text=r["text"], subject_set=SubjectSet([index[x] for x in gold])))
            t0 = time.perf_counter()
            proj.train(DocumentList(corpus), jobs=job["jobs"])
            return proj, cols, time.perf_counter() - t0

        def suggest(proj, cols, texts):
            t0 = time.perf_counter()
            results = proj.suggest_corpus(DocumentList([Document(text=t) for t in texts]))
            scores = [[round(float(v), 6) for v in res.as_vector()[cols]] for res in results]
            return scores, time.perf_counter() - t0

        for backend, analyzer in job["combos"]:
            key = f"{backend}/{analyzer}"
            res = {}
            for task in ("laari", "tags"):
                t_task = {}
                if task == "tags" and job["folds"]:
                    k = max(job["folds"]) + 1
                    oof: list = [None] * len(docs["train"])
                    t0 = time.perf_counter()
                    for f in range(k):
                        fit_rows = [r for r, fold in zip(docs["train"], job["folds"]) if fold != f]
                        idx = [i for i, fold in enumerate(job["folds"]) if fold == f]
                        proj, cols, _ = train(project_id(task, backend, analyzer, f"f{f}"), task, fit_rows)
                        scores, _ = suggest(proj, cols, [docs["train"][i]["text"] for i in idx])
                        for i, s in zip(idx, scores):
                            oof[i] = s
                    t_task["cv_seconds"] = round(time.perf_counter() - t0, 2)
                    t_task["cv_scores"] = oof
                    wlog(f"{key} tags: {k}-fold CV on the training split in {t_task['cv_seconds']:.1f}s")
                proj, cols, secs = train(project_id(task, backend, analyzer, "full"), task, docs["train"])
                t_task["train_seconds"] = round(secs, 2)
                t_task["suggest"] = {}
                for name, texts in docs["eval"].items():
                    scores, secs = suggest(proj, cols, texts)
                    t_task["suggest"][name] = {"scores": scores, "seconds": round(secs, 2)}
                wlog(f"{key} {task}: trained in {t_task['train_seconds']:.1f}s, suggested "
                     + ", ".join(f"{n} in {v['seconds']:.1f}s" for n, v in t_task["suggest"].items()))
                res[task] = t_task
            out["combos"][key] = res
    Path(result_path).write_text(json.dumps(out), encoding="utf-8")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# Main: data, Annif run, decisions, metrics, report
# ----------------------------------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help=f"comma-separated Annif backends (default: {','.join(BACKENDS)})")
    p.add_argument("--analyzers", default="snowball",
                   help="comma-separated Annif analyzers: snowball (default), voikko (needs libvoikko1 + voikko-fi)")
    p.add_argument("--quick", action="store_true",
                   help="3-fold instead of 5-fold cross-validation for the tag threshold (same data otherwise)")
    p.add_argument("--folds", type=int, default=None, help="cross-validation folds for the tag threshold "
                   "(default 5, 3 with --quick)")
    p.add_argument("--train", type=Path, nargs="+", default=[f for f in TRAIN_FILES if f.exists()],
                   help="training files, used together (default: laari's default training files)")
    p.add_argument("--heldout", type=Path, nargs="+", default=[f for f in HELDOUT_FILES if f.exists()],
                   help="held-out files, each scored on its own (default: laari's default held-out files)")
    p.add_argument("--real-sample", type=Path, default=DEFAULT_REAL_SAMPLE,
                   help="real projects, scored only (default: %(default)s; skipped with a warning if missing)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=0, help="Annif training jobs (0: Annif decides)")
    p.add_argument("--keep-workdir", action="store_true", help="keep Annif's temporary data dir (path is logged)")
    p.add_argument("--verbose", action="store_true", help="Annif's own log messages")
    p.add_argument("--worker", nargs=2, metavar=("JOB", "RESULT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _fmt(v, digits=3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def markdown_table(results: dict) -> str:
    head = ["system", "set", "n", "laari acc", "laari macro-F1", "in-theme macro-F1", "ei_teemassa P", "R", "F1",
            "fit AUROC", "tag micro-F1", "tag macro-F1", "tag thr", "train s", "suggest s"]
    rows = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for key, sysres in results["systems"].items():
        for name, m in sysres["sets"].items():
            ot = m["out_of_theme"]
            rows.append("| " + " | ".join([
                f"annif {key}", name, str(m["n"]), _fmt(m["laari"]["accuracy"]), _fmt(m["laari"]["macro_f1"]),
                _fmt(m["laari"]["in_theme_macro_f1"]), _fmt(ot["precision"]), _fmt(ot["recall"]), _fmt(ot["f1"]),
                _fmt(ot.get("fit_auroc")), _fmt(m["tags"]["micro_f1"]), _fmt(m["tags"]["macro_f1"]),
                _fmt(sysres["tag_threshold"]["threshold"], 4), _fmt(sysres["timings"]["train_seconds"], 1),
                _fmt(m["suggest_seconds"], 1)]) + " |")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    analyzers = [a.strip() for a in args.analyzers.split(",") if a.strip()]
    bad = [b for b in backends if b not in BACKENDS] + [a for a in analyzers if a not in ANALYZERS]
    if bad or not backends or not analyzers:
        raise BenchmarkError(f"unknown or missing backend/analyzer {bad}; backends: {', '.join(BACKENDS)}; "
                             f"analyzers: {', '.join(ANALYZERS)}")
    folds = args.folds if args.folds is not None else (3 if args.quick else 5)
    if folds < 2:
        raise BenchmarkError("--folds must be at least 2 (the tag threshold is chosen by cross-validation)")
    if args.jobs < 0:
        raise BenchmarkError("--jobs must be 0 (Annif decides) or a positive number")
    workdir = Path(tempfile.mkdtemp(prefix="laari-annif-"))
    try:
        return _benchmark(args, workdir, backends, analyzers, folds, started)
    finally:
        if args.keep_workdir:
            log(f"kept the work dir {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _benchmark(args: argparse.Namespace, workdir: Path, backends: list[str], analyzers: list[str], folds: int,
               started: float) -> int:
    sys.path.insert(0, str(REPO))
    import numpy as np

    from classifier.atomic import atomic_write_text
    from classifier.tables import DataError, file_hash
    from classifier.taxonomy import load_taxonomy
    from training.datasets import load_labelled
    from training.evaluate import score

    taxonomy = load_taxonomy()
    verdicts, tag_ids, out_id = taxonomy.verdict_ids, taxonomy.tag_ids, taxonomy.out_of_theme.id

    sets = {}
    data_info = {}
    paths = [(f"train:{p.stem}", p) for p in args.train] + [(p.stem, p) for p in args.heldout] + \
        [("real-sample", args.real_sample)]
    for name, path in paths:
        if name == "real-sample" and not path.exists():
            log(f"WARNING: real sample {path} not found: scoring the held-out files only")
            continue
        # Read a snapshot: the data files may be regenerated while the benchmark runs.
        snapshot = workdir / "input" / f"{name.replace(':', '-')}{path.suffix}"
        snapshot.parent.mkdir(exist_ok=True)
        try:
            shutil.copyfile(path, snapshot)
            data = load_labelled(snapshot, taxonomy)
        except OSError as exc:
            raise BenchmarkError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        except DataError as exc:
            raise BenchmarkError(str(exc).replace(str(snapshot), str(path))) from exc
        if name.startswith("train:"):
            sets["train"] = data if "train" not in sets else sets["train"].extend(data)
        else:
            sets[name] = data
        data_info[name] = {"path": os.path.relpath(path.resolve(), REPO), "rows": len(data),
                           "sha256": file_hash(snapshot)}
    train = sets["train"]
    if len(train) < 2 * folds:
        raise BenchmarkError(f"{args.train}: {len(train)} rows, too few for {folds}-fold cross-validation")
    train_ids = set(train.ids)
    train_texts = {doc_text(t, d) for t, d in zip(train.titles, train.descriptions)}
    eval_names = [n for n in sets if n != "train"]
    for name in eval_names:
        if name in sets:
            ev = sets[name]
            same_id = train_ids & set(ev.ids)
            same_text = sum(doc_text(t, d) in train_texts for t, d in zip(ev.titles, ev.descriptions))
            if same_id or same_text:
                log(f"WARNING: {name} shares {len(same_id)} id(s) and {same_text} text(s) with the training split")
            data_info[name]["overlap_with_train"] = {"ids": len(same_id), "texts": same_text}
    log("data: " + ", ".join(f"{n} {len(s)} rows" for n, s in sets.items()))

    home = laari_home()
    annif_py, annif_version = ensure_annif_venv(home)
    nltk_data = ensure_nltk_data(home)
    log(f"Annif {annif_version} at {annif_py}")

    combos = [(b, a) for a in analyzers for b in backends]
    fold_of = make_folds(train.laari, folds)
    cfg = write_annif_config(workdir, taxonomy, combos, folds)
    job = {**cfg, "language": LANGUAGE, "combos": combos, "folds": fold_of, "jobs": args.jobs,
           "verbose": args.verbose,
           "docs": {"train": [{"text": doc_text(t, d), "laari": lab, "tags": tags} for t, d, lab, tags
                              in zip(train.titles, train.descriptions, train.laari, train.tags)],
                    "eval": {n: [doc_text(t, d) for t, d in zip(sets[n].titles, sets[n].descriptions)]
                             for n in eval_names}}}
    job_path, result_path = workdir / "job.json", workdir / "result.json"
    job_path.write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update({"NLTK_DATA": str(nltk_data), "ANNIF_PROJECTS": str(workdir / "projects.cfg"),
                "ANNIF_DATADIR": str(workdir / "data"), "HF_HUB_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"})
    log(f"running Annif ({', '.join(f'{b}/{a}' for b, a in combos)}; {folds}-fold CV for the tag threshold) "
        f"in {workdir}")
    t0 = time.perf_counter()
    # The worker's own progress lines come on its stdout; its stderr (Annif's and omikuji's logs and progress
    # bars) goes to a file, shown only if the worker fails (or live with --verbose).
    errlog = workdir / "worker.stderr"
    with open(errlog, "wb") as ef:
        proc = subprocess.run([str(annif_py), str(Path(__file__).resolve()), "--worker", str(job_path),
                               str(result_path)], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                              stdout=sys.stderr, stderr=None if args.verbose else ef)
    worker_seconds = time.perf_counter() - t0
    if proc.returncode != 0 or not result_path.exists():
        tail = errlog.read_bytes()[-6000:].decode("utf-8", "replace").replace("\r", "\n")
        tail = "\n".join(line for line in tail.splitlines()  # without the progress bars
                         if line.strip() and not ("%" in line and "/s" in line and "[" in line))
        raise BenchmarkError(f"the Annif worker failed (exit {proc.returncode}); the end of its log:\n{tail}")
    annif_out = json.loads(result_path.read_text(encoding="utf-8"))

    results = {
        "benchmark": "annif_compare",
        "annif_version": annif_version,
        "command": " ".join(["python", "benchmarks/annif_compare.py", *sys.argv[1:]]),
        "annif_venv_versions": annif_out.get("versions", {}),
        "analyzers": {a: ANALYZERS[a] for a in analyzers},
        "backend_params": {b: {**BACKEND_PARAMS[b], "limit": "all subjects"} for b in backends},
        "decision_rules": {
            "laari": "top-1 subject of the laari project (6 subjects incl. ei_teemassa); no suggestion at all -> "
                     "ei_teemassa",
            "tags": f"subjects of the tags project with score >= one global threshold per system, chosen by "
                    f"{folds}-fold cross-validation on the training split (stratified by laari, seed {SEED}) "
                    f"maximising pooled out-of-fold tag micro-F1",
            "fit": "1 - score of the ei_teemassa subject",
        },
        "text": "title + blank line + description",
        "folds": folds,
        "data": data_info,
        "systems": {},
    }
    gold_train_tags = np.array([[t in set(ts) for t in tag_ids] for ts in train.tags], dtype=int)
    for key, res in annif_out["combos"].items():
        thr = best_threshold(res["tags"]["cv_scores"], gold_train_tags)
        sysres = {"tag_threshold": thr,
                  "timings": {"train_seconds": round(res["laari"]["train_seconds"] + res["tags"]["train_seconds"], 2),
                              "train_seconds_laari": res["laari"]["train_seconds"],
                              "train_seconds_tags": res["tags"]["train_seconds"],
                              "cv_seconds": res["tags"]["cv_seconds"]},
                  "sets": {}}
        for name in eval_names:
            data = sets[name]
            L = np.asarray(res["laari"]["suggest"][name]["scores"], dtype=float)
            T = np.asarray(res["tags"]["suggest"][name]["scores"], dtype=float)
            no_suggestion = L.max(axis=1) <= 0
            pred_laari = [out_id if empty else verdicts[int(i)]
                          for i, empty in zip(L.argmax(axis=1), no_suggestion)]
            pred_tags = [[t for t, s in zip(tag_ids, row) if s >= thr["threshold"]] for row in T]
            fit = (1.0 - L[:, verdicts.index(out_id)]).tolist()
            m = score(data.laari, pred_laari, data.tags, pred_tags, verdicts=verdicts, tag_ids=tag_ids,
                      out_id=out_id, fit=fit)
            m["source"] = data_info[name]["path"]
            m["docs_without_laari_suggestion"] = int(no_suggestion.sum())
            m["suggest_seconds"] = round(res["laari"]["suggest"][name]["seconds"]
                                         + res["tags"]["suggest"][name]["seconds"], 2)
            sysres["sets"][name] = m
        results["systems"][key] = sysres
    results["notes"] = [
        "NLTK punkt_tab parameters are empty files (plain Punkt sentence rules, no abbreviation list), so Annif "
        "tokenizes offline; Annif's word tokenizer asks NLTK for the English parameters whatever the language",
        "train/suggest seconds include Annif's tokenization and stemming; CV seconds are separate (timings.cv_seconds)",
    ]
    if any(b == "omikuji" for b, _ in combos):
        results["notes"].append("omikuji's clustering is randomised and Annif exposes no seed: its figures move by "
                                "about +-0.01 between runs")
    results["timings"] = {"annif_worker_seconds": round(worker_seconds, 1),
                          "total_seconds": round(time.perf_counter() - started, 1)}
    if any(b == "svc" for b, _ in combos):
        multi = sum(len(ts) > 1 for ts in train.tags)
        results["notes"].append(f"svc trains on one subject per document: for the {multi} training documents with "
                            f"several tags Annif keeps one of them (and skips documents without tags)")

    atomic_write_text(args.out, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"## Annif {annif_version} on laari's tasks (train: {len(train)} rows; tag threshold: {folds}-fold CV "
          f"on the training split)\n")
    print(markdown_table(results))
    print(f"\nTimes in seconds on this machine (train = laari + tags projects on the full training split; CV not "
          f"included). Total {results['timings']['total_seconds']:.0f}s. Details: {args.out}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(*args.worker)
    try:
        return run(args)
    except BenchmarkError as exc:
        log(f"ERROR: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
