"""Several processes (multi-host JAX) and several devices: one mesh, global arrays.

A job runs as one process, or as several that train one model data-parallel over all
their devices (`jax.devices()`: every device of every process). `initialize()` joins
the processes; it must run before any other JAX call and is a no-op for one process.
It knows two ways of being told there are several processes:

- SLURM: a step of `srun` with more than one task (SLURM_NTASKS > 1, detected from the
  variables `jax.distributed.initialize()` itself reads); JAX derives the coordinator
  (first node of the step, a port from the job id), the process count and id, and
  gives task i of a node the node's i-th accelerator: run one task per GPU with all of
  the node's GPUs visible (`--ntasks-per-node=G --gpus-per-node=G`, not
  `--gpus-per-task`), or one task per node with JAX_LOCAL_DEVICE_IDS=0,1,...,G-1.

      srun --nodes=2 --ntasks-per-node=4 --gpus-per-node=4 \\
        python -m experiments.u_curve --preset paper --workdir DIR

- explicit variables, anywhere (e.g. two shells on one machine):

      NOISEJAX_COORDINATOR=host:port NOISEJAX_NUM_PROCESSES=2 NOISEJAX_PROCESS_ID=i \\
        python -m experiments.u_curve --workdir DIR        # i = 0 and 1

  Process 0 serves the coordinator on that port.

Cross-process collectives on CPU use gloo (`jax_cpu_collectives_implementation`; a
value in $JAX_CPU_COLLECTIVES_IMPLEMENTATION wins); accelerators use their own.

The data-parallel layout: a 1-D mesh named "batch" over all global devices
(`batch_mesh`); the training data and the state are replicated (`replicate`: every device
holds all of it; each process supplies its own copy, the same on every process), the
batch of each step is split over the mesh (`shard_batch`, or `batch_sharding` inside a
compiled step), and XLA all-reduces the gradient. Only process 0 writes files
(`is_main_process`); `barrier` lines the processes up where one must wait for another's
files.
"""

import os
from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from noisejax.errors import ConfigError

COORDINATOR = "NOISEJAX_COORDINATOR"
NUM_PROCESSES = "NOISEJAX_NUM_PROCESSES"
PROCESS_ID = "NOISEJAX_PROCESS_ID"
# What jax.distributed.initialize() reads to detect a SLURM step (jax/_src/clusters).
SLURM_VARIABLES = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
                   "SLURM_LOCALID")

_joined = False  # whether initialize() joined the processes (it does so once)


def _int_variable(name: str) -> int:
  text = os.environ.get(name)
  try:
    return int(text)
  except (TypeError, ValueError):
    raise ConfigError(name, text, reason="must be an integer (environment variable)") from None


def launch() -> Optional[dict]:
  """How this process was started: None for a single process, else
  {"source": "env"|"slurm", "num_processes", "process_id", "coordinator"} (coordinator
  None for SLURM: JAX derives it)."""
  if NUM_PROCESSES in os.environ or COORDINATOR in os.environ or PROCESS_ID in os.environ:
    count = _int_variable(NUM_PROCESSES)
    if count < 1:
      raise ConfigError(NUM_PROCESSES, count, reason="must be at least 1")
    if count == 1:
      return None
    process_id = _int_variable(PROCESS_ID)
    if not 0 <= process_id < count:
      raise ConfigError(PROCESS_ID, process_id, reason=f"must lie in [0, {count})")
    coordinator = os.environ.get(COORDINATOR, "")
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
      raise ConfigError(COORDINATOR, coordinator or None,
                        reason="must be host:port (process 0 serves it)")
    return {"source": "env", "num_processes": count, "process_id": process_id,
            "coordinator": coordinator}
  if all(v in os.environ for v in SLURM_VARIABLES) and _int_variable("SLURM_NTASKS") > 1:
    return {"source": "slurm", "num_processes": _int_variable("SLURM_NTASKS"),
            "process_id": _int_variable("SLURM_PROCID"), "coordinator": None}
  return None


def initialize() -> bool:
  """Joins this process to the others of its job (`launch()`); a no-op for a single
  process or when already joined. Call it before any other JAX call. Returns whether
  the job has several processes."""
  global _joined
  if _joined or jax.distributed.is_initialized():
    _joined = True
    return True
  where = launch()
  if where is None:
    return False
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  if xla_bridge.backends_are_initialized():
    raise RuntimeError("noisejax.distributed.initialize() must run before any JAX "
                       "computation, but a JAX backend is already up (a module created a "
                       "JAX array when it was imported?)")
  if "JAX_CPU_COLLECTIVES_IMPLEMENTATION" not in os.environ:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if where["source"] == "env":
    jax.distributed.initialize(where["coordinator"], where["num_processes"],
                               where["process_id"])
  else:
    jax.distributed.initialize()
  _joined = True
  return True


def is_main_process() -> bool:
  """Whether this is process 0 (the one that writes files); True for a single process.
  Does not start a JAX backend when the job has one process."""
  return not jax.distributed.is_initialized() or jax.process_index() == 0


def process_count() -> int:
  """The number of processes of the job (1 without `initialize`), no backend started."""
  return jax.process_count() if jax.distributed.is_initialized() else 1


def barrier(name: str):
  """Waits until every process reached `barrier(name)` (a no-op for one process)."""
  if process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


# ----------------------------------------------------------------------------
# The mesh and global arrays.


def batch_mesh(devices: Optional[Sequence] = None) -> Mesh:
  """A 1-D mesh named "batch" over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), ("batch",))


def batch_sharding(mesh: Mesh, batch_size: int) -> NamedSharding:
  """The leading axis split over the mesh, or whole on every device when `batch_size`
  is not a multiple of the device count."""
  if batch_size % mesh.size:
    return NamedSharding(mesh, PartitionSpec())
  return NamedSharding(mesh, PartitionSpec("batch"))


def _place(tree, sharding: NamedSharding):
  """Every leaf as one global array with `sharding`. Each process supplies the whole
  value (the same on every process) and keeps the pieces its own devices hold."""

  def place(leaf):
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype,
                                                             jax.dtypes.prng_key):
      return jax.random.wrap_key_data(place(jax.random.key_data(leaf)),
                                      impl=jax.random.key_impl(leaf))
    if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
      return leaf
    if sharding.is_fully_addressable:
      return jax.device_put(leaf, sharding)
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

  return jax.tree.map(place, tree)


def replicate(tree, mesh: Optional[Mesh] = None):
  """Places every leaf (data, parameters, optimizer state) whole on every device."""
  mesh = batch_mesh() if mesh is None else mesh
  return _place(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(tree, mesh: Optional[Mesh] = None):
  """Places every leaf with its leading (batch) axis split over the mesh."""
  mesh = batch_mesh() if mesh is None else mesh
  return _place(tree, NamedSharding(mesh, PartitionSpec("batch")))
