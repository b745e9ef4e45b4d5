"""The one place where a prediction is made. The CLI, the HTTP service, batch jobs and the web page call this."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from .bundle import Bundle, BundleError, load_bundle
from .embedders import Embedder, TextKind, load_embedder
from .explain import fit_of, neighbours, sentence_support, top_terms
from .model import EMBEDDING, Documents
from .prediction import Prediction, ProjectInput
from .registry import Registry
from .taxonomy import Taxonomy
from .text import document_text, language_check, normalize, split_sentences

MAX_DESCRIPTION_CHARS = 100_000
MAX_EXPLAINED_SENTENCES = 60


class InputError(ValueError):
    """One project's input cannot be classified (empty, too long, wrong type); the message says which field."""


class ModelMismatchError(BundleError):
    """The model was trained with another taxonomy or embedder than the one given."""


class Predictor:
    def __init__(self, bundle: Bundle, embedder: Embedder | None = None, *,
                 max_description_chars: int = MAX_DESCRIPTION_CHARS, memo_size: int = 2048):
        self.bundle = bundle
        self.model = bundle.model
        self.reference = bundle.reference
        self.taxonomy = bundle.taxonomy
        self.max_description_chars = max_description_chars
        self.needs_embeddings = EMBEDDING in self.model.router or self.reference.space == EMBEDDING
        if self.needs_embeddings and embedder is None:
            raise ModelMismatchError(f"model {bundle.version} needs an embedder ({bundle.manifest.get('embedder_id')})")
        if self.needs_embeddings and embedder.id != bundle.manifest.get("embedder_id"):
            raise ModelMismatchError(
                f"model {bundle.version} was trained with embedder {bundle.manifest.get('embedder_id')!r} but "
                f"{embedder.id!r} is configured; set LAARI_EMBEDDER to the model's embedder or retrain")
        self.embedder = embedder if self.needs_embeddings else None
        self._memo: OrderedDict[tuple, Prediction] = OrderedDict()
        self._memo_lock = threading.Lock()
        self.memo_size = memo_size

    @classmethod
    def load(cls, model: str | Path | None = None, *, registry: Registry | None = None,
             embedder: Embedder | None = None, taxonomy: Taxonomy | None = None) -> "Predictor":
        """Load a model by version name or folder (the registry's current one by default)."""
        path = (registry or Registry()).resolve(str(model) if model else None)
        bundle = load_bundle(path)
        if taxonomy is not None:
            diff = bundle.taxonomy.diff(taxonomy)
            if diff:
                raise ModelMismatchError(f"model {bundle.version} does not match the taxonomy {taxonomy.source}: "
                                         + "; ".join(f"{k}: {', '.join(v)}" for k, v in diff.items())
                                         + " (+ only in the model, - only in the taxonomy); retrain")
        if embedder is None and (EMBEDDING in bundle.model.router or bundle.reference.space == EMBEDDING):
            embedder = load_embedder()
        return cls(bundle, embedder)

    @property
    def version(self) -> str:
        return self.bundle.version

    # ------------------------------------------------------------------ public
    def predict_one(self, description: str, title: str = "", id: str | None = None, explain: bool = True) -> Prediction:
        result = self.predict_many([ProjectInput(description=description, title=title, id=id)], explain=explain)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def predict_many(self, items: Sequence[ProjectInput], explain: bool = True,
                     sentences: bool = True) -> list[Prediction | InputError]:
        """One result per item, in order: a Prediction, or the InputError saying why that item was refused.

        ``explain=False`` leaves out terms, sentences and neighbours (runner-up, margin and fit stay);
        ``sentences=False`` keeps the rest of the explanation but skips the supporting sentences, the costly part
        (each sentence is scored on its own)."""
        results: list[Prediction | InputError | None] = [None] * len(items)
        ok: list[int] = []
        docs: list[str] = []
        for i, item in enumerate(items):
            try:
                doc = self._document(item)
            except InputError as exc:
                results[i] = exc
                continue
            remembered = self._recall((doc, explain, sentences, item.id))
            if remembered is not None:
                results[i] = remembered
            else:
                docs.append(doc)
                ok.append(i)
        if ok:
            embeddings = self.embedder.encode(docs, TextKind.PASSAGE) if self.embedder else None
            scores = self.model.scores(Documents(docs, embeddings))
            for row, i in enumerate(ok):
                results[i] = self._prediction(items[i], docs[row], scores, row, explain, sentences)
                self._remember((docs[row], explain, sentences, items[i].id), results[i])
        return results  # type: ignore[return-value]

    def _recall(self, key: tuple) -> Prediction | None:
        """A finished prediction for the same text (and id, which the neighbours exclude), as a fresh copy."""
        with self._memo_lock:
            found = self._memo.get(key)
            if found is None:
                return None
            self._memo.move_to_end(key)
        return copy.deepcopy(found)

    def _remember(self, key: tuple, prediction: Prediction) -> None:
        if self.memo_size <= 0:
            return
        with self._memo_lock:
            self._memo[key] = copy.deepcopy(prediction)
            while len(self._memo) > self.memo_size:
                self._memo.popitem(last=False)

    # ------------------------------------------------------------------ internals
    def _document(self, item: ProjectInput) -> str:
        if not isinstance(item.description, str):
            raise InputError(f"description: expected text, got {type(item.description).__name__}")
        if item.title is not None and not isinstance(item.title, str):
            raise InputError(f"title: expected text, got {type(item.title).__name__}")
        if not normalize(item.description):
            raise InputError("description: empty or whitespace only")
        if len(item.description) > self.max_description_chars:
            raise InputError(f"description: {len(item.description)} characters, the limit is "
                             f"{self.max_description_chars}")
        return document_text(item.title, item.description)

    def _prediction(self, item: ProjectInput, doc: str, scores, row: int, explain: bool,
                    sentences: bool = True) -> Prediction:
        model = self.model
        laari_ids = model.laari_ids
        P = scores.verdict_proba[row]
        k = len(laari_ids)
        out_p = float(P[k])
        in_theme = P[:k] / max(P[:k].sum(), 1e-12)
        order = np.argsort(-in_theme, kind="stable")
        best, second = laari_ids[order[0]], laari_ids[order[1]]
        is_out = out_p >= model.out_threshold
        verdict = model.out_id if is_out else best
        S = scores.tag_scores[row]
        tags = [t for t, s, thr in zip(model.tag_ids, S, model.tag_thresholds) if s >= thr]

        query = self.reference.query_vectors(
            Documents([doc], None if scores.embeddings is None else scores.embeddings[row : row + 1]), model)[0]
        fit = fit_of(self.reference, query, best, is_out)
        warnings = []
        lang = language_check(doc)
        if lang["language"] == "other":
            warnings.append("the text does not look like Finnish; the model was trained on Finnish and the "
                            "prediction is less reliable")
        if self.embedder is not None and hasattr(self.embedder, "inner"):
            inner = self.embedder.inner
            if hasattr(inner, "max_tokens") and len(doc) > 1500:
                n_tokens = inner.count_tokens([doc])[0]
                if n_tokens > inner.max_tokens:
                    warnings.append(f"long text ({n_tokens} tokens): embedded in "
                                    f"{len(inner.chunk(doc))} chunks and pooled")

        explanation: dict = {
            "runner_up": {"laari": second, "probability": round(float(in_theme[order[1]]), 4)},
            "margin": round(float(in_theme[order[0]] - in_theme[order[1]]), 4),
            "fit": fit,
            "channels": {"choice": model.channel_choice, "embedding_weight": model.router_weight},
        }
        if is_out:
            explanation["nearest_laari"] = best
        if explain:
            column = model.verdicts.index(verdict)
            x_row = scores.lexical_X[row] if scores.lexical_X is not None else None
            explanation["terms"] = top_terms(model, doc, x_row, "router", column, contrast=True)
            explanation["tag_terms"] = {
                t: top_terms(model, doc, x_row, "tagger", model.tag_ids.index(t), contrast=False, n=5) for t in tags}
            if sentences:
                explanation["sentences"] = self._sentences(doc, column)
            explanation["similar"] = neighbours(self.reference, query, k=3, exclude_id=item.id)
        return Prediction(
            id=item.id, laari=verdict,
            laari_scores={lid: round(float(p), 4) for lid, p in zip(laari_ids, in_theme)},
            out_of_theme_probability=round(out_p, 4), fit=round(1.0 - out_p, 4), fit_verdict=fit["verdict"],
            tags=tags, tag_scores={t: round(float(s), 4) for t, s in zip(model.tag_ids, S)},
            explanation=explanation, model_version=self.version, language=lang["language"], warnings=warnings)

    def _sentences(self, doc: str, column: int) -> list[dict]:
        sentences = split_sentences(doc)[:MAX_EXPLAINED_SENTENCES]
        if len(sentences) <= 1:
            return [{"index": 0, "text": s, "support": None} for s in sentences]
        # sentences need embeddings only when the router gives the embedding channel weight
        uses_embeddings = self.embedder is not None and EMBEDDING in self.model.router and self.model.router_weight > 0
        emb = self.embedder.encode(sentences, TextKind.PASSAGE) if uses_embeddings else None
        return sentence_support(self.model, sentences, emb, column)
