"""The one place where a prediction is made. The CLI, the HTTP service, batch jobs and the web page call this."""

from __future__ import annotations

import logging
import pickle
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np

from .bundle import Bundle, BundleError, load_bundle
from .devices import Device
from .embedders import Embedder, TextKind, load_embedder
from .embedders.backends import split_id
from .explain import fits, neighbours, sentence_support, term_explanations
from .model import EMBEDDING, Documents
from .prediction import Prediction, ProjectInput
from .registry import Registry
from .taxonomy import Taxonomy
from .text import join_document, language_check, normalize, split_sentences

MAX_DESCRIPTION_CHARS = 100_000
MAX_EXPLAINED_SENTENCES = 60
_HAS_LETTER = re.compile(r"[^\W\d_]")  # a letter of any script
log = logging.getLogger(__name__)
LENGTH_MARGIN = 32  # characters: the embedder's prefix and special tokens, more than enough


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
        trained_with = bundle.manifest.get("embedder_id")
        if self.needs_embeddings and embedder.id != trained_with:
            if split_id(embedder.id)[0] != split_id(trained_with or "")[0]:
                raise ModelMismatchError(
                    f"model {bundle.version} was trained with embedder {trained_with!r} but "
                    f"{embedder.id!r} is configured; set LAARI_EMBEDDER to the model's embedder or retrain")
            # the same model run by another backend (e.g. torch-trained heads, ONNX vectors): allowed, and said
            log.warning("model %s was trained on vectors of %s; embedding with %s", bundle.version, trained_with,
                        embedder.id)
        self.embedder_id = embedder.id if self.needs_embeddings else None
        self.embedder = embedder if self.needs_embeddings else None
        self._memo: OrderedDict[tuple, bytes] = OrderedDict()
        self._memo_lock = threading.Lock()
        self.memo_size = memo_size

    @classmethod
    def load(cls, model: str | Path | None = None, *, registry: Registry | None = None,
             embedder: Embedder | None = None, taxonomy: Taxonomy | None = None,
             device: Device | str | None = None) -> "Predictor":
        """Load a model by version name or folder (the registry's current one by default). ``device``: where the
        embedding model runs when none is given and the model needs one (``load_embedder``)."""
        path = (registry or Registry()).resolve(str(model) if model else None)
        bundle = load_bundle(path)
        if taxonomy is not None:
            diff = bundle.taxonomy.diff(taxonomy)
            if diff:
                raise ModelMismatchError(f"model {bundle.version} does not match the taxonomy {taxonomy.source}: "
                                         + "; ".join(f"{k}: {', '.join(v)}" for k, v in diff.items())
                                         + " (+ only in the model, - only in the taxonomy); retrain")
        if embedder is None and (EMBEDDING in bundle.model.router or bundle.reference.space == EMBEDDING):
            embedder = load_embedder(device=device)
        return cls(bundle, embedder)

    @property
    def version(self) -> str:
        return self.bundle.version

    def warm_up(self) -> None:
        """Load what the first prediction would otherwise load (the lemma dictionary, the vocabulary tables), so
        that processes forked from this one, and the first request, start warm."""
        if self.model.vectorizer is not None:
            self.model.vectorizer.analyse(["Hankkeessa kehitetään työhyvinvointia."])

    # ------------------------------------------------------------------ public
    def predict_one(self, description: str, title: str = "", id: str | None = None, explain: bool = True) -> Prediction:
        result = self.predict_many([ProjectInput(description=description, title=title, id=id)], explain=explain)[0]
        if isinstance(result, Exception):
            raise result
        return result

    def predict_many(self, items: Sequence[ProjectInput], explain: bool = True,
                     sentences: bool = True, remember: bool = True) -> list[Prediction | InputError]:
        """One result per item, in order: a Prediction, or the InputError saying why that item was refused.

        ``explain=False`` leaves out terms, sentences and neighbours (runner-up, margin and fit stay);
        ``sentences=False`` keeps the rest of the explanation but skips the supporting sentences, the costly part
        (each sentence is scored on its own). ``remember=False``: neither look up nor keep finished predictions
        (a batch, whose ids are unique, would only pay for keeping them)."""
        results: list[Prediction | InputError | None] = [None] * len(items)
        ok: list[int] = []
        docs: list[str] = []
        for i, item in enumerate(items):
            try:
                doc = self.document(item)
            except InputError as exc:
                results[i] = exc
                continue
            remembered = self._recall((doc, explain, sentences, item.id)) if remember else None
            if remembered is not None:
                results[i] = remembered
            else:
                docs.append(doc)
                ok.append(i)
        if ok:
            embeddings = self.embedder.encode(docs, TextKind.PASSAGE) if self.embedder else None
            titles = [normalize(items[i].title or "") for i in ok]
            scores = self.model.scores(Documents(docs, embeddings, titles))
            made = self._predictions([items[i] for i in ok], docs, scores, explain, sentences)
            for row, i in enumerate(ok):
                results[i] = made[row]
                if remember:
                    self._remember((docs[row], explain, sentences, items[i].id), made[row])
        return results  # type: ignore[return-value]

    def _recall(self, key: tuple) -> Prediction | None:
        """A finished prediction for the same text (and id, which the neighbours exclude), as a fresh copy."""
        with self._memo_lock:
            found = self._memo.get(key)
            if found is None:
                return None
            self._memo.move_to_end(key)
        return pickle.loads(found)

    def _remember(self, key: tuple, prediction: Prediction) -> None:
        """Keep a frozen copy (pickled in memory: several times cheaper than a deep copy of the explanation)."""
        if self.memo_size <= 0:
            return
        frozen = pickle.dumps(prediction, protocol=pickle.HIGHEST_PROTOCOL)
        with self._memo_lock:
            self._memo[key] = frozen
            while len(self._memo) > self.memo_size:
                self._memo.popitem(last=False)

    def document(self, item: ProjectInput) -> str:
        """The text the model reads for an item (title and description, normalised), or InputError saying why
        the item is refused."""
        if not isinstance(item.description, str):
            raise InputError(f"description: expected text, got {type(item.description).__name__}")
        if item.title is not None and not isinstance(item.title, str):
            raise InputError(f"title: expected text, got {type(item.title).__name__}")
        if len(item.description) > self.max_description_chars:
            raise InputError(f"description: {len(item.description)} characters, the limit is "
                             f"{self.max_description_chars}")
        description = normalize(item.description)
        if not description:
            raise InputError("description: empty or whitespace only")
        if not _HAS_LETTER.search(description):
            raise InputError("description: no words to read (only digits, symbols or punctuation)")
        return join_document(normalize(item.title or ""), description)

    # ------------------------------------------------------------------ internals
    def _predictions(self, items: Sequence[ProjectInput], docs: list[str], scores, explain: bool,
                     sentences: bool) -> list[Prediction]:
        """Predictions for a scored batch: the decisions, fit and explanations are worked out for all rows at
        once (matrix products, one pass of the lexical attribution), then assembled row by row."""
        model = self.model
        laari_ids = model.laari_ids
        k = len(laari_ids)
        P = scores.verdict_proba
        out_p = P[:, k]
        in_theme = P[:, :k] / np.maximum(P[:, :k].sum(axis=1, keepdims=True), 1e-12)
        order = np.argsort(-in_theme, axis=1, kind="stable")
        is_out = out_p >= model.out_threshold
        best = [laari_ids[o] for o in order[:, 0]]
        verdicts = [model.out_id if out else b for out, b in zip(is_out, best)]
        columns = np.array([model.verdicts.index(v) for v in verdicts])
        S = scores.tag_scores
        tags = [[t for t, s, thr in zip(model.tag_ids, row, model.tag_thresholds) if s >= thr] for row in S]
        queries = self.reference.query_vectors(Documents(docs, scores.embeddings), model, scores.lexical_X)
        fit = fits(self.reference, queries, best, list(is_out))
        long_warnings = self._length_warnings(docs)
        in_theme_rounded = np.round(in_theme.astype(np.float64), 4).tolist()
        tags_rounded = np.round(np.asarray(S, dtype=np.float64), 4).tolist()
        if explain:
            terms = term_explanations(model, scores.lexical, columns, tags)
            similar = neighbours(self.reference, queries, k=3, exclude_ids=[item.id for item in items])
        out = []
        for r, item in enumerate(items):
            warnings = []
            lang = language_check(docs[r])
            if lang["language"] == "other":
                warnings.append("the text does not look like Finnish; the model was trained on Finnish and the "
                                "prediction is less reliable")
            if long_warnings[r]:
                warnings.append(long_warnings[r])
            second = order[r, 1]
            explanation: dict = {
                "runner_up": {"laari": laari_ids[second], "probability": round(float(in_theme[r, second]), 4)},
                "margin": round(float(in_theme[r, order[r, 0]] - in_theme[r, second]), 4),
                "fit": fit[r],
                "channels": {"choice": model.channel_choice, "embedding_weight": model.router_weight},
            }
            if is_out[r]:
                explanation["nearest_laari"] = best[r]
            if explain:
                explanation["terms"], explanation["tag_terms"] = terms[r]
                if sentences:
                    explanation["sentences"] = self._sentences(
                        docs[r], int(columns[r]), None if scores.embeddings is None else scores.embeddings[r])
                explanation["similar"] = similar[r]
            out.append(Prediction(
                id=item.id, laari=verdicts[r],
                laari_scores=dict(zip(laari_ids, in_theme_rounded[r])),
                out_of_theme_probability=round(float(out_p[r]), 4), fit=round(1.0 - float(out_p[r]), 4),
                fit_verdict=fit[r]["verdict"], tags=tags[r],
                tag_scores=dict(zip(model.tag_ids, tags_rounded[r])),
                explanation=explanation, model_version=self.version, language=lang["language"],
                warnings=warnings))
        return out

    def _length_warnings(self, docs: list[str]) -> list[str | None]:
        """A warning for each text longer than the embedder reads at once (it was embedded in parts)."""
        out: list[str | None] = [None] * len(docs)
        counter = getattr(self.embedder, "token_counts", None)
        limit = getattr(self.embedder, "max_tokens", None) if counter else None
        if not limit:
            return out
        # a token covers at least one character of the text or of its prefix ("passage: "), besides the special
        # tokens, so only texts within that margin of the limit or longer can exceed it
        long = [i for i, d in enumerate(docs) if len(d) + LENGTH_MARGIN > limit]
        if long:
            for i, n_tokens in zip(long, counter([docs[i] for i in long], TextKind.PASSAGE)):
                if n_tokens > limit:
                    out[i] = (f"long text ({n_tokens} tokens; the embedder reads {limit} at a time): embedded in "
                              "parts and pooled")
        return out

    def _sentences(self, doc: str, column: int, doc_embedding: np.ndarray | None) -> list[dict]:
        """The sentences the router scores highest for ``column``, each scored on its own words with the
        document's embedding held fixed: the embedding channel's view of the whole text is the same for every
        sentence, so no sentence needs a pass through the transformer of its own (that pass cost as much as
        the document's)."""
        sentences = split_sentences(doc)[:MAX_EXPLAINED_SENTENCES]
        if len(sentences) <= 1:
            return [{"index": 0, "text": s, "support": None} for s in sentences]
        uses_embeddings = EMBEDDING in self.model.router and self.model.router_weight > 0
        emb = np.repeat(doc_embedding[None, :], len(sentences), axis=0) \
            if uses_embeddings and doc_embedding is not None else None
        if uses_embeddings and emb is None:  # a model that needs embeddings, but the batch was scored without
            emb = self.embedder.encode(sentences, TextKind.PASSAGE)
        return sentence_support(self.model, sentences, emb, column)
