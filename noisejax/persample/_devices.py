"""Several devices: the batch axis sharded over a 1-D mesh.

Every persample function is pure and jit-able; place the batch with `shard_batch` and
the parameters with `replicate`, and the same code runs data-parallel, XLA inserting the
collectives.
"""

from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def batch_mesh(devices: Optional[Sequence] = None) -> Mesh:
  """A 1-D mesh named "batch" over `devices` (default: all devices)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), ("batch",))


def shard_batch(tree, mesh: Optional[Mesh] = None):
  """Places every leaf with its leading (batch) axis split over the mesh."""
  mesh = batch_mesh() if mesh is None else mesh
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("batch")))


def replicate(tree, mesh: Optional[Mesh] = None):
  """Places every leaf (params, optimizer state) whole on every device of the mesh."""
  mesh = batch_mesh() if mesh is None else mesh
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
