"""Data-parallel training of a small MLP with JAX across processes: ``python3 -m reference_workloads.training.train``.

Each process owns an equal slice of every global batch; gradients and the loss are averaged across all processes
with ``lax.pmean`` inside ``shard_map`` (gloo CPU collectives), so every rank applies the same update and logs the
same loss.  Rank 0 writes an atomic checkpoint every ``checkpoint_every`` steps to a shared directory; on start every
rank reads it and the group checks, through a collective, that all ranks resume from the same step.

The group is set up with ``jax.distributed.initialize`` from Kubeflow Trainer's JAX environment (``JAX_COORDINATOR_
ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``); a low heartbeat timeout makes the survivors of a killed rank
abort quickly, so the operator restarts the whole group.  With one process and no coordinator it trains alone (the
baseline the benchmark compares against).  Prints JSON lines (:mod:`.logs`) on stdout.

JAX is imported only inside :func:`run`; everything else here is pure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reference_workloads.training import checkpoint, logs

EXIT_BAD_SETTINGS = 2
EXIT_CHECKPOINT_DISAGREES = 3


@dataclass(frozen=True)
class Settings:
    steps: int
    """Total optimisation steps; the run ends when the checkpoint-resumed count reaches it."""
    global_batch: int
    """Examples per step over all processes; must divide by the process count."""
    features: int = 16
    hidden: int = 64
    learning_rate: float = 0.05
    seed: int = 0
    checkpoint_dir: Path | None = None
    """Shared directory for ``checkpoint.npz`` (None: no checkpoints, start from scratch)."""
    checkpoint_every: int = 10
    coordinator: str = ""
    """``host:port`` of process 0's coordinator; empty for a single process."""
    num_processes: int = 1
    process_id: int = 0
    heartbeat_seconds: int = 10
    """How long the coordinator waits for a missing heartbeat before the group aborts (JAX's default is 100 s)."""
    init_timeout_seconds: int = 180
    """How long ``jax.distributed.initialize`` waits for every process to join."""
    min_step_seconds: float = 0.0
    """Pacing: each step takes at least this long (so a scenario has time to act mid-run); 0 for benchmarks."""

    def validate(self) -> list[str]:
        errs = []
        if self.steps < 1:
            errs.append(f"steps must be >= 1, got {self.steps}")
        if self.num_processes < 1:
            errs.append(f"num_processes must be >= 1, got {self.num_processes}")
        if not 0 <= self.process_id < max(self.num_processes, 1):
            errs.append(f"process_id {self.process_id} is not in 0..{self.num_processes - 1}")
        if self.global_batch < 1 or self.global_batch % max(self.num_processes, 1):
            errs.append(f"global batch {self.global_batch} does not split evenly over {self.num_processes} processes")
        if self.num_processes > 1 and not self.coordinator:
            errs.append("more than one process needs a coordinator address (JAX_COORDINATOR_ADDRESS)")
        if self.checkpoint_every < 1:
            errs.append(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        return errs


def parse_settings(argv: Sequence[str], env: Mapping[str, str]) -> Settings:
    """Settings from the command line, each defaulting to an environment variable (what a TrainJob sets)."""
    p = argparse.ArgumentParser(prog="train", description=__doc__.splitlines()[0])

    def envs(name: str, default: str) -> str:
        return env.get(name, default)

    p.add_argument("--steps", type=int, default=int(envs("TRAIN_STEPS", "100")))
    p.add_argument("--global-batch", type=int, default=int(envs("TRAIN_GLOBAL_BATCH", "256")))
    p.add_argument("--features", type=int, default=int(envs("TRAIN_FEATURES", "16")))
    p.add_argument("--hidden", type=int, default=int(envs("TRAIN_HIDDEN", "64")))
    p.add_argument("--learning-rate", type=float, default=float(envs("TRAIN_LEARNING_RATE", "0.05")))
    p.add_argument("--seed", type=int, default=int(envs("TRAIN_SEED", "0")))
    p.add_argument("--checkpoint-dir", default=envs("TRAIN_CHECKPOINT_DIR", ""))
    p.add_argument("--checkpoint-every", type=int, default=int(envs("TRAIN_CHECKPOINT_EVERY", "10")))
    p.add_argument("--coordinator", default=envs("JAX_COORDINATOR_ADDRESS", ""))
    p.add_argument("--num-processes", type=int, default=int(envs("JAX_NUM_PROCESSES", "1")))
    p.add_argument("--process-id", type=int, default=int(envs("JAX_PROCESS_ID", "0")))
    p.add_argument("--heartbeat-seconds", type=int, default=int(envs("TRAIN_HEARTBEAT_SECONDS", "10")))
    p.add_argument("--init-timeout-seconds", type=int, default=int(envs("TRAIN_INIT_TIMEOUT_SECONDS", "180")))
    p.add_argument("--min-step-seconds", type=float, default=float(envs("TRAIN_MIN_STEP_SECONDS", "0")))
    a = p.parse_args(list(argv))
    return Settings(
        steps=a.steps, global_batch=a.global_batch, features=a.features, hidden=a.hidden,
        learning_rate=a.learning_rate, seed=a.seed,
        checkpoint_dir=Path(a.checkpoint_dir) if a.checkpoint_dir else None, checkpoint_every=a.checkpoint_every,
        coordinator=a.coordinator, num_processes=a.num_processes, process_id=a.process_id,
        heartbeat_seconds=a.heartbeat_seconds, init_timeout_seconds=a.init_timeout_seconds,
        min_step_seconds=a.min_step_seconds,
    )


# -- pure parts: data and the initial parameters -----------------------------------------------------------------------

def teacher(features: int, seed: int) -> np.ndarray:
    """The fixed linear map the model learns (same on every process: derived from the seed only)."""
    w: np.ndarray = np.random.default_rng([seed, 7]).normal(size=(features, 1)) / np.sqrt(features)
    return w.astype(np.float32)


def global_batch(step: int, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """The whole batch for ``step`` (0-based), identical on every process: x and y = tanh(x @ teacher) + noise."""
    rng = np.random.default_rng([settings.seed, 1, step])
    x = rng.normal(size=(settings.global_batch, settings.features)).astype(np.float32)
    y = np.tanh(x @ teacher(settings.features, settings.seed)) + 0.01 * rng.normal(size=(settings.global_batch, 1))
    return x, y.astype(np.float32)


def local_slice(batch: np.ndarray, process_id: int, num_processes: int) -> np.ndarray:
    """This process's contiguous share of a global batch."""
    n = batch.shape[0] // num_processes
    return batch[process_id * n:(process_id + 1) * n]


def initial_params(settings: Settings) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([settings.seed, 2])
    f, h = settings.features, settings.hidden
    return {
        "w1": (rng.normal(size=(f, h)) / np.sqrt(f)).astype(np.float32),
        "b1": np.zeros((h,), np.float32),
        "w2": (rng.normal(size=(h, 1)) / np.sqrt(h)).astype(np.float32),
        "b2": np.zeros((1,), np.float32),
    }


def should_checkpoint(step: int, settings: Settings) -> bool:
    """Rank 0 checkpoints after every ``checkpoint_every``-th step and after the last one."""
    return settings.checkpoint_dir is not None and (step % settings.checkpoint_every == 0 or step == settings.steps)


# -- the run -----------------------------------------------------------------------------------------------------------

def _say(event: str, rank: int, **fields: Any) -> None:
    print(logs.line(event, rank, time.time(), **fields), flush=True)


def run(settings: Settings) -> int:
    """Train; returns the process exit code."""
    rank = settings.process_id
    errs = settings.validate()
    if errs:
        _say("error", rank, message="; ".join(errs))
        return EXIT_BAD_SETTINGS

    import jax
    import jax.numpy as jnp
    from jax.experimental import multihost_utils
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    jax.config.update("jax_platforms", "cpu")
    if settings.num_processes > 1:
        jax.distributed.initialize(
            coordinator_address=settings.coordinator,
            num_processes=settings.num_processes,
            process_id=settings.process_id,
            initialization_timeout=settings.init_timeout_seconds,
            heartbeat_timeout_seconds=settings.heartbeat_seconds,
        )
    nproc = jax.process_count()

    resumed: checkpoint.Checkpoint | None = None
    if settings.checkpoint_dir is not None:
        try:
            resumed = checkpoint.load(settings.checkpoint_dir)
        except checkpoint.CheckpointError as err:
            _say("error", rank, message=str(err))
            return EXIT_CHECKPOINT_DISAGREES
    start_step = resumed.step if resumed else 0
    if nproc > 1:  # every rank must resume from the same checkpoint step
        steps = np.asarray(multihost_utils.process_allgather(np.asarray([start_step], np.int64))).reshape(-1)
        if len(set(steps.tolist())) != 1:
            _say("error", rank, message=f"ranks disagree on the checkpoint step: {steps.tolist()}")
            return EXIT_CHECKPOINT_DISAGREES
    _say("start", rank, process_count=nproc, device_count=jax.device_count(),
         local_device_count=jax.local_device_count(), resumed_from=resumed.step if resumed else None,
         steps=settings.steps, global_batch=settings.global_batch)

    mesh = Mesh(np.asarray(jax.devices()), ("data",))
    data_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    host_params = resumed.params if resumed else initial_params(settings)
    params = {k: jax.make_array_from_process_local_data(replicated, v) for k, v in host_params.items()}

    def forward(p: dict[str, Any], x: Any) -> Any:
        return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def loss_fn(p: dict[str, Any], x: Any, y: Any) -> Any:
        return jnp.mean((forward(p, x) - y) ** 2)

    lr = settings.learning_rate

    def sharded_step(p: dict[str, Any], x: Any, y: Any) -> tuple[dict[str, Any], Any]:
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        grads = jax.lax.pmean(grads, "data")
        loss = jax.lax.pmean(loss, "data")
        return jax.tree.map(lambda w, g: w - lr * g, p, grads), loss

    # check_vma=False: gradients stay per-shard, so the explicit pmean above is the only cross-process reduction
    # (with it on, JAX would already sum the gradients of the replicated parameters across shards).
    step_fn = jax.jit(jax.shard_map(sharded_step, mesh=mesh, in_specs=(P(), P("data"), P("data")),
                                    out_specs=(P(), P()), check_vma=False))

    loss_value = resumed.loss if resumed else float("nan")
    for step in range(start_step, settings.steps):
        t0 = time.monotonic()
        gx, gy = global_batch(step, settings)
        x = jax.make_array_from_process_local_data(data_sharding, local_slice(gx, rank, nproc), gx.shape)
        y = jax.make_array_from_process_local_data(data_sharding, local_slice(gy, rank, nproc), gy.shape)
        params, loss = step_fn(params, x, y)
        loss_value = float(np.asarray(loss.addressable_data(0)))
        done = step + 1
        _say("step", rank, step=done, loss=loss_value)
        if should_checkpoint(done, settings) and rank == 0:
            assert settings.checkpoint_dir is not None
            host = {k: np.asarray(v.addressable_data(0)) for k, v in params.items()}
            checkpoint.save(settings.checkpoint_dir, checkpoint.Checkpoint(done, loss_value, host))
            _say("checkpoint", rank, step=done)
        rest = settings.min_step_seconds - (time.monotonic() - t0)
        if rest > 0:
            time.sleep(rest)  # pacing only (see Settings.min_step_seconds); nothing waits on a condition here
    _say("done", rank, step=settings.steps, loss=loss_value)
    if nproc > 1:  # leave together, so no rank sees a peer's exit as a failure
        multihost_utils.sync_global_devices("done")
        jax.distributed.shutdown()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(sys.argv[1:] if argv is None else argv, os.environ)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
