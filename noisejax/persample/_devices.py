"""Several devices: the batch axis sharded over a 1-D mesh.

Every persample function is pure and jit-able; place the batch with `shard_batch` and
the parameters with `replicate`, and the same code runs data-parallel, XLA inserting the
collectives. The mesh and the placements are `noisejax.distributed`'s (one place; they
also work across processes).
"""

from noisejax.distributed import batch_mesh, replicate, shard_batch  # noqa: F401
