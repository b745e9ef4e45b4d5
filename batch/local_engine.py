"""The local engine: chunks predicted in this process, or in a pool of worker processes forked from it."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Callable, Iterable, Iterator

from classifier.project_rows import InputRow

from .predict import ChunkResult, predict_chunk
from .settings import BatchError


class LocalEngine:
    """On this machine: one Predictor in this process, chunk after chunk; or, with ``workers`` > 1, that many
    worker processes working on consecutive chunks, their results yielded in input order.

    Workers are forked from this process once its Predictor is warm (model, lemma dictionary and vocabulary
    tables loaded), so they start at once and share those pages until they write to them; each opens its own
    connection to the embedding cache and uses its share of the CPU threads. Where ``fork`` is not available, or
    with ``fork=False`` (a model on a GPU: CUDA does not survive a fork), they are spawned and load the model
    through ``factory``."""

    name = "local"

    def __init__(self, predictor, *, workers: int = 1, factory: Callable | None = None, fork: bool = True):
        if workers < 1:
            raise BatchError(f"workers: {workers}; at least 1")
        self.predictor = predictor
        self.workers = workers
        self.factory = factory
        self.fork = fork

    def run(self, chunks: Iterable[list[InputRow]], explain: str, chunk_size: int) -> Iterator[ChunkResult]:
        if self.workers == 1:
            for chunk in chunks:
                yield predict_chunk(self.predictor, chunk, explain)
            return
        import multiprocessing
        from collections import deque
        from concurrent.futures import ProcessPoolExecutor

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        chunks = iter(chunks)
        if self.fork and "fork" in multiprocessing.get_all_start_methods():
            # the first chunk here: the workers then start with the word and token tables it filled
            first = next(chunks, None)
            if first is None:
                return
            yield predict_chunk(self.predictor, first, explain)
            _WORKER["predictor"] = self.predictor
            context, initargs = multiprocessing.get_context("fork"), (None, threads, os.getpid())
        elif self.factory is not None:
            context, initargs = multiprocessing.get_context("spawn"), (self.factory, threads, os.getpid())
        else:
            raise BatchError("worker processes need fork, or a predictor factory to start them")
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_worker_start, initargs=initargs)
        try:
            pending: deque = deque()
            for chunk in chunks:
                pending.append(pool.submit(_worker_chunk, chunk, explain))
                if len(pending) >= 2 * self.workers:  # bounded: a few chunks in flight, not the file
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            _WORKER.pop("predictor", None)


_WORKER: dict = {}


def _worker_start(factory: Callable | None, threads: int, parent: int):
    """In a worker process: its share of the CPU threads, and its Predictor (forked: the parent's, with a
    connection of its own to the embedding cache; spawned: a new one from ``factory``)."""
    _exit_with_parent(parent)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when it is first imported
    if "torch" in sys.modules:  # already imported: importing it only to set this would cost seconds per worker
        sys.modules["torch"].set_num_threads(threads)
    if factory is not None:
        _WORKER["predictor"] = factory()
    else:
        cache = getattr(getattr(_WORKER["predictor"], "embedder", None), "cache", None)
        if cache is not None:
            cache.reopen_after_fork()


def _exit_with_parent(parent: int):
    """A worker must not outlive the batch (killed with kill -9, the parent cannot stop it): on Linux the kernel
    kills it when the parent dies; elsewhere a thread checks for a new parent every half second."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        def watch():
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _worker_chunk(chunk: list[InputRow], explain: str) -> ChunkResult:
    return predict_chunk(_WORKER["predictor"], chunk, explain)
