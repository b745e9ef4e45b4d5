"""The Ray engine: the prediction in a Ray Data actor pool (one Predictor per actor, on a GPU where there is one),
the results back in input order as the same chunks as the local engine's."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from classifier.project_rows import InputRow

from classifier.devices import Device, DeviceError, cuda_available

from .predict import ChunkResult, cache_counts, chunk_result, embedding_info, predict_rows


def _rows_to_table(rows: Sequence[InputRow]):
    import pyarrow as pa

    return pa.table({
        "row": pa.array([r.row for r in rows], pa.int64()),
        "id": pa.array([r.id for r in rows], pa.string()),
        "title": pa.array([r.title for r in rows], pa.string()),
        "description": pa.array([r.description for r in rows], pa.string()),
        "error": pa.array([r.error for r in rows], pa.string()),
        "official": pa.array([None if r.official is None else json.dumps(r.official, ensure_ascii=False)
                              for r in rows], pa.string()),
    })


def _table_to_rows(table) -> list[InputRow]:
    cols = {name: table.column(name).to_pylist() for name in ("row", "id", "title", "description", "error",
                                                             "official")}
    return [InputRow(row=cols["row"][i], id=cols["id"][i], title=cols["title"][i] or "",
                     description=cols["description"][i], error=cols["error"][i],
                     official=None if cols["official"][i] is None else json.loads(cols["official"][i]))
            for i in range(table.num_rows)]


def _worker_device(asked: Device | None) -> Device | None:
    """The device of a Ray actor: the CPU when asked for; else its GPU when Ray gave it one (``cuda`` asked for and
    none given is an error); else the CPU (``auto``), or None when nothing was asked (the embedder's default)."""
    if asked is Device.CPU:
        return Device.CPU
    try:
        import ray

        has_gpu = bool(ray.get_gpu_ids()) and cuda_available()
    except Exception:  # noqa: BLE001 - no GPU support: the CPU it is
        has_gpu = False
    if has_gpu:
        return Device.CUDA
    if asked is Device.CUDA:
        raise DeviceError("device cuda: this Ray worker has no GPU (Ray gave it none, or torch sees none); use "
                          "--device cpu or auto, or --gpus-per-worker on a cluster with GPUs")
    return Device.CPU if asked is Device.AUTO else None


class RayPredictWorker:
    """A Ray Data actor: loads the Predictor once, then predicts batch after batch (on its GPU when it has one)."""

    def __init__(self, factory: Callable, explain: str, device: Device | None = None):
        where = _worker_device(device)
        self.predictor = factory(device=where) if where else factory()
        self.explain = explain
        self.info = embedding_info(self.predictor)

    def __call__(self, batch):
        import pyarrow as pa

        rows = _table_to_rows(batch)
        t0 = time.perf_counter()
        h0, m0 = cache_counts(self.predictor)
        out = predict_rows(self.predictor, rows, self.explain)
        h1, m1 = cache_counts(self.predictor)
        n = len(out)
        extra = [0] * max(0, n - 1)
        return pa.table({
            "row": pa.array([r["row"] for r in out], pa.int64()),
            "json": pa.array([json.dumps(r, ensure_ascii=False) for r in out], pa.string()),
            "seconds": pa.array(([time.perf_counter() - t0] + [0.0] * max(0, n - 1))[:n], pa.float64()),
            "cache_hits": pa.array(([h1 - h0] + extra)[:n], pa.int64()),
            "cache_misses": pa.array(([m1 - m0] + extra)[:n], pa.int64()),
            "device": pa.array([self.info["device"]] * n, pa.string()),
            "embedder_id": pa.array([self.info["embedder_id"]] * n, pa.string()),
        })


class RayEngine:
    """Ray Data: the driver reads and validates the rows (cheap, in order), the prediction runs in an actor pool
    (``workers`` actors, each loading the model once; ``batch_size`` rows per call, so the embedder works in
    batches; one GPU per actor when the cluster has GPUs), and the driver writes the results in input order into
    the same checkpointed parts as the local engine. ``address=None`` starts a local Ray instance. ``device``:
``cpu`` (no GPUs asked for), ``cuda`` (each actor on a GPU: an error when the cluster has none), ``auto`` or None
(a GPU per actor when the cluster has GPUs)."""

    name = "ray"

    def __init__(self, factory: Callable, *, address: str | None = None, workers: int | None = None,
                 num_cpus: int | None = None, gpus_per_worker: float | None = None, batch_size: int = 64,
                 env: dict[str, str] | None = None, device: Device | None = None):
        self.factory = factory
        self.device = device
        self.address = address
        self.workers = workers
        self.num_cpus = num_cpus
        self.gpus_per_worker = gpus_per_worker
        self.batch_size = batch_size
        self.env = env if env is not None else {k: v for k, v in os.environ.items() if k.startswith("LAARI_")}
        self._started = False

    def _init(self):
        import logging

        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                      "log_to_driver": False, "configure_logging": True}
            if self.address:
                # a cluster: its workers get the LAARI_* settings and this code's folder on their path (a local
                # instance's workers inherit both from this process)
                kwargs["address"] = self.address
                code_path = str(Path(__file__).resolve().parent.parent)
                kwargs["runtime_env"] = {"env_vars": {**self.env, "PYTHONPATH": os.pathsep.join(
                    p for p in [code_path, os.environ.get("PYTHONPATH", "")] if p)}}
            elif self.num_cpus:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(**kwargs)
            self._started = True
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        return ray

    def close(self):
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def run(self, chunks: Iterable[list[InputRow]], explain: str, chunk_size: int) -> Iterator[ChunkResult]:
        ray = self._init()
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        for attr in ("enable_progress_bars", "enable_operator_progress_bars", "print_on_execution_start"):
            if hasattr(ctx, attr):
                setattr(ctx, attr, False)
        gpus = self.gpus_per_worker
        cluster_gpus = ray.cluster_resources().get("GPU", 0)
        if gpus is None:
            gpus = 1 if cluster_gpus >= 1 and self.device is not Device.CPU else 0
        if self.device is Device.CUDA and not (gpus and cluster_gpus):
            raise DeviceError("device cuda: the Ray cluster has no GPU for its workers; use --device cpu or auto")
        expected: list[tuple[int, int, int]] = []  # per chunk: first row, last row, count
        refs = []
        for chunk in chunks:
            refs.append(ray.put(_rows_to_table(chunk)))
            expected.append((chunk[0].row, chunk[-1].row, len(chunk)))
        if not refs:
            return
        workers = self.workers or max(1, int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1) // max(gpus, 1)))
        ds = ray.data.from_arrow_refs(refs).map_batches(
            RayPredictWorker, fn_constructor_kwargs={"factory": self.factory, "explain": explain,
                                                     "device": self.device},
            batch_size=self.batch_size, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers), num_gpus=gpus)
        buf: list[dict] = []
        stats = {"seconds": 0.0, "cache_hits": 0, "cache_misses": 0}
        info: dict = {"device": None, "embedder_id": None}
        index = 0
        t_last = time.perf_counter()
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            buf.extend(json.loads(s) for s in batch.column("json").to_pylist())
            stats["cache_hits"] += sum(batch.column("cache_hits").to_pylist())
            stats["cache_misses"] += sum(batch.column("cache_misses").to_pylist())
            if batch.num_rows:  # the same for every row of a worker's batch
                info = {key: batch.column(key)[0].as_py() for key in ("device", "embedder_id")}
            while index < len(expected) and len(buf) >= expected[index][2]:
                first, last, count = expected[index]
                out, buf = buf[:count], buf[count:]
                if out[0]["row"] != first or out[-1]["row"] != last:
                    raise RuntimeError(f"ray engine: rows out of order (expected {first}..{last}, got "
                                       f"{out[0]['row']}..{out[-1]['row']})")
                now = time.perf_counter()
                yield chunk_result(out, {**stats, **info, "seconds": now - t_last})
                t_last = now
                stats = {"seconds": 0.0, "cache_hits": 0, "cache_misses": 0}
                index += 1
        if index != len(expected) or buf:
            raise RuntimeError(f"ray engine: {len(expected) - index} chunk(s) missing from the results")
