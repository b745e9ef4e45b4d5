"""The service layer: the loaded model (swapped atomically on reload), the micro-batcher, the prediction cache and
the feedback store. Route handlers only translate HTTP to calls here and back.

Atomic reload: a request takes the current ``ModelHandle`` once, at its start, and uses it to the end (its jobs
in the batcher carry the handle); a reload loads and checks the new model in a loader thread while the old one
keeps serving, then replaces the reference in one assignment. No request ever sees a half-loaded model.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from classifier.bundle import MANIFEST, BundleError, read_manifest, verify_signature
from classifier.embedders import Embedder, EmbedderError, TextKind
from classifier.embedders.backends import split_id
from classifier.prediction import Prediction, ProjectInput
from classifier.predictor import InputError, ModelMismatchError, Predictor
from classifier.registry import Registry
from classifier.text import content_hash, document_text, words
from classifier.lexical import lemma_terms

from .batching import MicroBatcher
from .fairness import FairShare, RateLimited
from classifier.feedback import FeedbackStore, FeedbackStoreError, FeedbackValueError
from .pools import PoolStats, compute_pools
from .settings import Settings

log = logging.getLogger("laari.service")
CHECK_TEXT = "Hankkeessa kehitetään työyhteisöjen työhyvinvointia ja esihenkilötyötä."


# --------------------------------------------------------------------------- errors the routes turn into HTTP
class ServiceError(Exception):
    status = 500

    def __init__(self, message: str, field: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after = retry_after  # seconds, sent as Retry-After


class NotReady(ServiceError):
    status = 503


class TooLarge(ServiceError):
    status = 413


class Invalid(ServiceError):
    status = 422


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class Unavailable(ServiceError):
    status = 503


class TooMany(ServiceError):
    status = 429


# --------------------------------------------------------------------------- the loaded model
@dataclass(eq=False)
class ModelHandle:
    predictor: Predictor
    pools: PoolStats
    loaded_at: datetime

    @property
    def version(self) -> str:
        return self.predictor.version

    @property
    def content_id(self) -> str:
        """What the model is made of: the bundle hash (a bundle swapped under the same version name differs)."""
        manifest = getattr(getattr(self.predictor, "bundle", None), "manifest", None) or {}
        return manifest.get("bundle_hash") or f"{self.version}@{id(self.predictor)}"


def text_sha256(title: str | None, description: str) -> str:
    """The hash feedback refers to: sha256 of the normalised title + description (what the model read)."""
    return content_hash(document_text(title or "", description))


def highlights(doc: str, explanation: dict) -> dict:
    """The supporting sentences and, for each supporting term (a lemma), the words of the text it comes from."""
    terms = [t for t in explanation.get("terms", []) if t["weight"] > 0]
    wanted = {t["term"]: t for t in terms}
    forms: dict[str, set[str]] = {t: set() for t in wanted}
    for w in set(words(doc)):
        for lemma in lemma_terms(w):
            if lemma in forms:
                forms[lemma].add(w)
    return {"sentences": [s["text"] for s in explanation.get("sentences", [])],
            "terms": [{"term": t, "weight": wanted[t]["weight"], "forms": sorted(forms[t])} for t in wanted]}


class PredictionCache:
    """LRU of finished predictions keyed by the model's content (bundle hash, not its version name), explain flag,
    id, title and description: a repeated text is answered without the batcher (the embedding cache below the
    predictor covers the rest). The service's only prediction cache: it asks the predictor not to keep its own."""

    def __init__(self, items: int):
        self.items = items
        self._data: OrderedDict[str, dict] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(model_id: str, item: ProjectInput, explain: bool) -> str:
        h = hashlib.sha256()
        for part in (model_id, "1" if explain else "0", item.id or "", item.title or "", item.description):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        return h.hexdigest()

    def get(self, key: str) -> dict | None:
        value = self._data.get(key)
        if value is None:
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: str, value: dict) -> None:
        if self.items <= 0:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.items:
            self._data.popitem(last=False)


def _chars(item: ProjectInput) -> int:
    """What the embedder reads for an item (its weight in the batcher and in the per-client limits)."""
    return len(item.description) + len(item.title or "")


def _prepare(handle: ModelHandle, payload: tuple[ProjectInput, bool], chunks_per_step: int = 1):
    """Steps that embed a long text a few chunks at a time into the embedding cache (None: nothing to do, e.g. the
    cache is off or the text will be refused), so that the micro-batcher can serve short requests in between."""
    predictor = handle.predictor
    steps = getattr(predictor.embedder, "encode_steps", None)
    if steps is None or not hasattr(predictor.embedder, "cache"):
        return None
    try:
        doc = predictor.document(payload[0])
    except InputError:
        return None
    return steps(doc, TextKind.PASSAGE, chunks_per_step)


def _process(handle: ModelHandle, payloads: Sequence[tuple[ProjectInput, bool]]) -> list[dict | InputError]:
    """Runs in the prediction thread: one predict_many per explain flag, then the HTTP extras per result."""
    results: list[Any] = [None] * len(payloads)
    for explain in (True, False):
        idx = [i for i, (_, e) in enumerate(payloads) if e is explain]
        if not idx:
            continue
        items = [payloads[i][0] for i in idx]
        for i, item, res in zip(idx, items, handle.predictor.predict_many(items, explain=explain, remember=False)):
            if isinstance(res, Exception):
                results[i] = res
                continue
            d = res.to_dict() if isinstance(res, Prediction) else dict(res)
            d["text_sha256"] = text_sha256(item.title, item.description)
            d["highlights"] = highlights(document_text(item.title, item.description), d["explanation"]) \
                if explain else None
            results[i] = d
    return results


class LaariService:
    def __init__(self, settings: Settings, predictor: Predictor | None = None):
        self.settings = settings
        self.registry = Registry(settings.registry_root())
        self._make_executors()
        self.batcher = MicroBatcher(self._process, self.executor, max_items=settings.batch_max_items,
                                    wait_ms=settings.batch_wait_ms, max_weight=settings.batch_max_chars,
                                    prepare=lambda handle, payload: _prepare(handle, payload,
                                                                             settings.batch_step_chunks))
        self.fair = FairShare(requests_per_minute=settings.client_requests_per_minute,
                              chars_per_minute=settings.client_chars_per_minute,
                              queued_chars=settings.client_queued_chars)
        self._stopped = False
        self.cache = PredictionCache(settings.prediction_cache_items)
        self._handle: ModelHandle | None = None
        self._embedders: dict[str, Embedder] = {}
        self._reload_lock = threading.Lock()
        self._load_task: asyncio.Task | None = None
        self.status = "loading"
        self.error: str | None = None
        self._feedback: FeedbackStore | None = None
        self._feedback_error: str | None = None
        self._feedback_lock = threading.Lock()
        if predictor is not None:
            self._install(self._handle_for(predictor))

    # ------------------------------------------------------------------ model
    @property
    def handle(self) -> ModelHandle:
        handle = self._handle
        if handle is None:
            if self.status == "failed":
                raise NotReady(f"no model loaded: {self.error}")
            raise NotReady("the model is still loading; try again in a moment")
        return handle

    def _handle_for(self, predictor: Predictor) -> ModelHandle:
        if predictor.embedder is not None:
            self._embedders.setdefault(split_id(predictor.embedder.id)[0], predictor.embedder)
        return ModelHandle(predictor, compute_pools(predictor), datetime.now(timezone.utc))

    def _install(self, handle: ModelHandle) -> None:
        self._handle = handle  # one assignment: requests that already hold the old handle finish on it
        self.status, self.error = "ready", None

    def _load(self, model: str | None, *, by_version: bool = False) -> ModelHandle:
        """Load, verify and prepare a model (in the loader thread). ``by_version``: ``model`` must be a version
        name in the registry (an admin's reload), never a folder elsewhere on disk."""
        name = model or self.settings.model
        try:
            path = self.registry.path(model) if by_version and model else self.registry.resolve(name)
        except BundleError as exc:
            if name is None:
                raise NotFound(str(exc)) from exc
            raise Invalid(str(exc), field="model") from exc
        if not (path / MANIFEST).exists():
            raise NotFound(f"no model version {name!r} in {self.registry.root}; known: {self.registry.versions()}",
                           field="model")
        try:
            key = self.settings.model_signing_key
            if key is not None and key.get_secret_value():
                verify_signature(path, key)
            manifest = read_manifest(path)
            # one embedder per embedding model, whichever engine a version's training vectors came from (a
            # version trained on torch vectors is served by the engine already loaded, as a fresh load would be)
            embedder = self._embedders.get(split_id(manifest.get("embedder_id") or "")[0])
            predictor = Predictor.load(path, registry=self.registry, embedder=embedder)
            predictor.warm_up()  # here, not in the first request: lemma dictionary, vocabulary tables
            self._check_prediction(predictor, name)
        except ModelMismatchError as exc:
            raise Conflict(str(exc), field="model") from exc
        except EmbedderError as exc:
            raise Conflict(f"model {name or 'current'} needs an embedding model this service cannot load: {exc}",
                           field="model") from exc
        except BundleError as exc:
            raise Invalid(f"model {name or 'current'} cannot be loaded: {exc}", field="model") from exc
        return self._handle_for(predictor)

    @staticmethod
    def _check_prediction(predictor: Predictor, name: str | None) -> None:
        """One prediction before the model is served: a bundle whose arrays do not fit its model (a shape that
        passes every hash) fails here, not in a reviewer's request."""
        try:
            predictor.predict_one(CHECK_TEXT, explain=True)
        except Exception as exc:
            raise Invalid(f"model {name or 'current'} fails on a check prediction, so it is not served: "
                          f"{type(exc).__name__}: {exc}", field="model") from exc

    def _make_executors(self) -> None:
        # one prediction thread: the embedding model already uses every core; loads never queue behind it
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="laari-predict")
        self.loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="laari-load")

    async def start(self) -> None:
        """Open the feedback store and load the model (in the background when the settings say so)."""
        if self._stopped:  # started again after a stop (the same app served twice)
            self._make_executors()
            self.batcher.executor = self.executor
            self._stopped = False
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.loader, self._open_feedback)
        if self._handle is not None:
            return
        if self.settings.load_in_background:
            self._load_task = loop.create_task(self._initial_load())
        else:
            await self._initial_load()

    async def _initial_load(self) -> None:
        started = time.perf_counter()
        try:
            handle = await asyncio.get_running_loop().run_in_executor(self.loader, self._load, None)
        except Exception as exc:  # reported by /ready; the process stays up so that an admin can reload
            self.status, self.error = "failed", getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            log.error("model load failed: %s", self.error)
            return
        if self._handle is None:  # a reload may have won the race
            self._install(handle)
        log.info("ready: model %s loaded in %.1f s", handle.version, time.perf_counter() - started)

    async def reload(self, model: str | None) -> dict:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        previous = self._handle.version if self._handle is not None else None

        def load_and_swap() -> ModelHandle:
            with self._reload_lock:  # one reload at a time
                handle = self._load(model, by_version=True)
                self._install(handle)
                return handle

        handle = await loop.run_in_executor(self.loader, load_and_swap)
        seconds = round(time.perf_counter() - started, 3)
        log.info("reloaded: %s -> %s in %.1f s", previous, handle.version, seconds)
        return {"previous_version": previous, "model_version": handle.version, "seconds": seconds}

    async def stop(self) -> None:
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        await self.batcher.aclose()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.loader.shutdown(wait=False, cancel_futures=True)
        self._stopped = True
        with self._feedback_lock:
            if self._feedback is not None:
                self._feedback.close()
                self._feedback = None

    # ------------------------------------------------------------------ prediction
    def _process(self, handle: ModelHandle, payloads: Sequence[tuple[ProjectInput, bool]]) -> list:
        started = time.perf_counter()
        out = _process(handle, payloads)
        self.fair.observe(sum(_chars(item) for item, _ in payloads), time.perf_counter() - started)
        return out

    def admit(self, client: str) -> None:
        """Count a request against the client's request rate (429 over it)."""
        try:
            self.fair.admit_request(client)
        except RateLimited as exc:
            raise TooMany(exc.message, retry_after=exc.retry_after) from exc

    def check_description(self, description: str, where: str = "description") -> None:
        limit = self.settings.max_description_chars
        if len(description) > limit:
            raise TooLarge(f"{where}: {len(description)} characters, the limit is {limit}", field=where)

    async def predict(self, items: Sequence[ProjectInput], explain: bool = True,
                      client: str = "local") -> tuple[ModelHandle, list]:
        """One result per item: a prediction dict, or the InputError for that item. All on one model. ``client``
        (API key fingerprint or address) is what the per-client limits and the batcher's turns count by."""
        self.admit(client)
        handle = self.handle
        results: list[Any] = [None] * len(items)
        todo: list[int] = []
        keys = [self.cache.key(handle.content_id, it, explain) for it in items]
        for i, k in enumerate(keys):
            hit = self.cache.get(k)
            if hit is not None:
                results[i] = hit
            else:
                todo.append(i)
        if todo:
            payloads = [(items[i], explain) for i in todo]
            weights = [_chars(items[i]) for i in todo]
            try:
                with self.fair.reserve(client, sum(weights)):
                    if len(payloads) == 1:
                        out = [await self.batcher.submit(handle, payloads[0], client=client, weight=weights[0])]
                    else:
                        out = await self.batcher.submit_many(handle, payloads, client=client, weights=weights)
            except RateLimited as exc:
                raise TooMany(exc.message, retry_after=exc.retry_after) from exc
            for i, res in zip(todo, out):
                results[i] = res
                if isinstance(res, dict):
                    self.cache.put(keys[i], res)
        return handle, results

    # ------------------------------------------------------------------ feedback
    def _open_feedback(self) -> None:
        with self._feedback_lock:
            if self._feedback is not None:
                return
            try:
                self._feedback = FeedbackStore(self.settings.feedback_url)
                self._feedback_error = None
                log.info("feedback database: %s", self._feedback.display_url)
            except FeedbackStoreError as exc:
                self._feedback_error = str(exc)
                log.error("%s", exc)

    @property
    def feedback(self) -> FeedbackStore:
        if self._feedback is None:
            self._open_feedback()
        if self._feedback is None:
            raise Unavailable(f"the feedback database is not available: {self._feedback_error}")
        return self._feedback

    def add_feedback(self, body, key_id: str | None) -> dict:
        """Validate a feedback body against the served taxonomy and store it (runs in a worker thread)."""
        tax = self.handle.predictor.taxonomy
        verdicts, tag_ids = set(tax.verdict_ids), set(tax.tag_ids)
        for field in ("laari", "suggested_laari"):
            value = getattr(body, field)
            if value is not None and value not in verdicts:
                raise Invalid(f"{field}: unknown laari {value!r}; known: {tax.verdict_ids}", field=field)
        for field in ("tags", "suggested_tags"):
            unknown = [t for t in (getattr(body, field) or []) if t not in tag_ids]
            if unknown:
                raise Invalid(f"{field}: unknown tag(s) {unknown}; known: {tax.tag_ids}", field=field)
        sha = body.text_sha256
        if body.text is not None:
            self.check_description(body.text, "text")
            computed = text_sha256(body.title, body.text)
            if sha is not None and sha != computed:
                raise Invalid("text_sha256: does not match the text (sha256 of the normalised title and text); "
                              "send the text as it was classified, or only its hash", field="text_sha256")
            sha = computed
        laari = body.laari if body.laari is not None else body.suggested_laari
        tags = body.tags if body.tags is not None else body.suggested_tags
        record = {
            "project_id": body.project_id, "title": body.title, "text": body.text, "text_sha256": sha,
            "model_version": body.model_version, "suggested_laari": body.suggested_laari,
            "suggested_tags": body.suggested_tags, "decision": body.decision, "laari": laari,
            "tags": sorted(set(tags)) if tags is not None else None, "comment": body.comment,
            "reviewer": body.reviewer, "key_id": key_id,
        }
        try:
            return self.feedback.add(record)
        except FeedbackValueError as exc:
            raise Invalid(str(exc), field=exc.field) from exc
        except FeedbackStoreError as exc:
            raise Unavailable(str(exc)) from exc

    # ------------------------------------------------------------------ info
    def ready(self) -> dict:
        h = self._handle
        return {"ready": h is not None, "status": self.status, "model_version": h.version if h else None,
                "loaded_at": h.loaded_at.isoformat(timespec="seconds") if h else None, "error": self.error,
                "batching": {**self.batcher.stats(), "cache_hits": self.cache.hits},
                "fairness": self.fair.stats()}

    def model_info(self) -> dict:
        h = self.handle
        m = h.predictor.bundle.manifest
        tax = h.predictor.taxonomy
        td = m.get("training_data")
        return {
            "version": h.version, "created": m.get("created"), "kind": m.get("kind"),
            "taxonomy": {"version": tax.version, "name": tax.name, "hash": m.get("taxonomy_hash")},
            "channel_choice": m.get("channel_choice"), "channels": m.get("channels"),
            "thresholds": m.get("thresholds"), "embedder_id": m.get("embedder_id"),
            "metrics": m.get("metrics") or {},
            "training_data": {k: v for k, v in td.items()} if isinstance(td, dict) else None,
            "feedback": m.get("feedback"), "bundle_hash": m.get("bundle_hash"),
            "loaded_at": h.loaded_at.isoformat(timespec="seconds"),
        }

    def taxonomy(self) -> dict:
        tax = self.handle.predictor.taxonomy
        d = tax.to_dict()
        d["hash"] = tax.content_hash()
        return d
