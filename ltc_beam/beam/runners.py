"""Choosing and starting a Beam runner for ltc-beam jobs.

``runner_context(name, args)`` gives ``(runner, PipelineOptions)`` and tears down what it
started. The embedded default is ``FnApiRunner`` (Beam's bare default ``DirectRunner``
first tries to download the Prism binary). Local helpers:

- ``FnApiRunner``: in memory; ``--direct_running_mode=multi_processing
  --direct_num_workers=N`` runs N SDK worker processes.
- ``PortableRunner`` with no ``--job_endpoint``: starts Beam's local job service
  (``apache_beam.runners.portability.local_job_service_main``) and runs with
  ``--environment_type=LOOPBACK`` — the Fn API path Flink and Dataflow use, offline.
- ``DaskRunner`` with no ``--dask_client_address``: starts a ``distributed.LocalCluster``
  (``--dask_workers N``, default 2, one thread each). Call this from code guarded by
  ``if __name__ == "__main__"`` (worker processes are spawned).
- anything else (``DataflowRunner``, ``FlinkRunner``, ...) is passed to Beam by name
  with the remaining options.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time

from apache_beam.options.pipeline_options import PipelineOptions

from ltc_beam.errors import RunnerError

log = logging.getLogger(__name__)

DEFAULT_RUNNER = "FnApiRunner"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _has(args: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def _pop(args: list[str], flag: str, default=None):
    out = list(args)
    for i, a in enumerate(out):
        if a == flag and i + 1 < len(out):
            value = out[i + 1]
            del out[i : i + 2]
            return value, out
        if a.startswith(flag + "="):
            del out[i]
            return a.split("=", 1)[1], out
    return default, out


@contextlib.contextmanager
def local_job_service(timeout: float = 60.0):
    """Start Beam's local job service in a subprocess; yields its endpoint."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", f"--port={port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"local job service exited with code {proc.returncode}")
            with socket.socket() as s:
                if s.connect_ex(("localhost", port)) == 0:
                    break
            if time.time() > deadline:
                raise RuntimeError("local job service did not start in time")
            time.sleep(0.2)
        yield f"localhost:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def local_dask_cluster(workers: int = 2):
    """A ``distributed.LocalCluster`` of ``workers`` processes with one thread each."""
    from distributed import Client, LocalCluster

    # One torch thread per worker; set before workers start so they inherit it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # its scheduler and workers log some 40 INFO lines a run (ports, plugins, shutdown)
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.WARNING)
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.WARNING
    )
    client = Client(cluster)
    try:
        yield cluster.scheduler_address
    finally:
        client.close()
        cluster.close()
        logger.setLevel(level)


@contextlib.contextmanager
def runner_context(name: str | None = None, args: list[str] | None = None):
    """Yields ``(runner, options)`` for ``name`` (see module docstring)."""
    args = list(args or [])
    name = name or DEFAULT_RUNNER
    with contextlib.ExitStack() as stack:
        if name in ("FnApiRunner", "fn_api_runner"):
            from apache_beam.runners.portability.fn_api_runner import FnApiRunner

            runner = FnApiRunner()
        elif name == "PortableRunner":
            from apache_beam.runners.portability.portable_runner import PortableRunner

            if not _has(args, "--job_endpoint"):
                args.append(f"--job_endpoint={stack.enter_context(local_job_service())}")
                if not _has(args, "--environment_type"):
                    args.append("--environment_type=LOOPBACK")
            runner = PortableRunner()
        elif name == "DaskRunner":
            from apache_beam.runners.dask.dask_runner import DaskRunner

            workers, args = _pop(args, "--dask_workers", "2")
            if not _has(args, "--dask_client_address"):
                args.append(f"--dask_client_address={stack.enter_context(local_dask_cluster(int(workers)))}")
            runner = DaskRunner()
        else:
            runner = name
        yield runner, PipelineOptions(args)


def run(build, name: str | None = None, args: list[str] | None = None):
    """Build a pipeline with ``build(pipeline)`` and run it to completion on the named runner
    (on DaskRunner with every branch joined first: :func:`join_leaves`).

    Returns ``(PipelineResult, value returned by build)``.
    """
    import apache_beam as beam

    with runner_context(name, args) as (runner, options):
        pipeline = beam.Pipeline(runner=runner, options=options)
        value = build(pipeline)
        if type(runner).__name__ == "DaskRunner":
            join_leaves(pipeline)
        try:
            result = pipeline.run()
        except RuntimeError as exc:
            if "prism binary" not in str(exc).lower():
                raise
            raise RunnerError(
                f"runner {name or DEFAULT_RUNNER} could not start: {exc}. Offline, run in process with "
                "--runner FnApiRunner (or PortableRunner, DaskRunner)"
            ) from exc
        try:
            result.wait_until_finish()
        finally:
            client = getattr(result, "client", None)  # DaskRunner opens its own client
            if client is not None:
                client.close()
        return result, value


def leaves(pipeline) -> list:
    """The PCollections of ``pipeline`` that no step reads (main or side input)."""
    from apache_beam.pipeline import PipelineVisitor
    from apache_beam.pvalue import PCollection

    class _Leaves(PipelineVisitor):
        def __init__(self):
            self.made, self.read = [], set()

        def visit_transform(self, node):
            self.read.update(id(v) for v in node.inputs)
            self.read.update(id(s.pvalue) for s in node.side_inputs)
            self.made += [v for v in node.outputs.values() if isinstance(v, PCollection)]

    visitor = _Leaves()
    pipeline.visit(visitor)
    return [v for v in visitor.made if id(v) not in visitor.read]


def join_leaves(pipeline) -> None:
    """Make every branch of ``pipeline`` feed one last step. Beam 2.77's DaskRunner computes
    only the step applied last (and what it reads): a job that writes compressed files and
    dead letters wrote the dead letters alone, and reported success."""
    import apache_beam as beam

    ends = leaves(pipeline)
    if len(ends) > 1:
        _ = tuple(ends) | "JoinLeavesForDask" >> beam.Flatten()


def counters(result, namespace: str = "ltc_beam") -> dict[str, int]:
    """Committed counter values of ``namespace`` (empty where the runner reports none)."""
    try:
        metrics = result.metrics().query()
    except Exception:  # noqa: BLE001 - some runners do not report metrics
        return {}
    out: dict[str, int] = {}
    for c in metrics.get("counters", []):
        if c.key.metric.namespace == namespace:
            value = c.committed if c.committed is not None else c.attempted
            out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out
