"""bench_seeds: the tiny preset end to end, and the two timed loops do the same work."""

import json

import chex
import jax
import numpy as np

from experiments import bench_seeds
from noisejax import experiment, train


def test_per_step_loop_and_scan_train_the_same_run():
  config, splits = bench_seeds._problem("hypercube", jax.random.key(0))
  spec = train.make_spec(config, 2, splits.num_train, splits.input_shape)
  state, keys = train._init_run(spec, splits, jax.random.key(1), {"p": 0.2}, config.optim.lr)
  copy = lambda tree: jax.tree.map(lambda a: a.copy(), tree)
  step_fn = jax.jit(train.train_step, static_argnums=0, donate_argnums=1)
  looped = bench_seeds.python_loop(spec, copy(state), np.asarray(splits.x_train),
                                   np.asarray(splits.noisy.labels), keys, 300, step_fn)
  data, _ = splits.device_data()
  scanned, _ = train._train_chunk(spec, copy(state), data, keys, 0, 300, None)
  chex.assert_trees_all_close(looped.params, scanned.params, atol=1e-5)


def test_tiny_preset_end_to_end(tmp_path):
  out = experiment.execute("bench_seeds", bench_seeds.get_config("tiny"), tmp_path,
                           bench_seeds.PARTS)
  names = [f"{net}/{c}" for net in ("hypercube", "mnist_batch1", "fcn", "cnn")
           for c in ("seeds2_through_train_classifier", "scan_vs_python_loop")]
  assert [c.id for c in out] == names
  assert all(c.paper == "engineering" for c in out)
  record = experiment.load_record(tmp_path / "records" / "cnn")
  assert record["loop"] == "scan"  # its convolutions are im2col matmuls (no XLA conv to avoid)
  assert [r["runs_per_program"] for r in record["rows"]] == [1, 2]  # scanned runs vmap
  mnist = experiment.load_record(tmp_path / "records" / "mnist_batch1")
  assert mnist["loop"] == "scan" and [r["runs_per_program"] for r in mnist["rows"]] == [1, 2]
  for r in mnist["rows"]:
    assert r["speedup"] > 0 and r["memory_mb"] > 0
  table = (tmp_path / "bench_table.md").read_text()
  assert table.count("\n| cnn |") == 3 and (tmp_path / "bench_seeds_cnn.png").exists()
  claims = json.loads((tmp_path / "claims.json").read_text())
  assert claims[0]["measured"]["speedup_by_seeds"]["2"] == out[0].measured["speedup_by_seeds"]["2"]
