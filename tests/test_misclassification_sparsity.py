"""Label noise and activation sparsity (misclassification Figs. 1, 5, 6): tiny runs."""

import json
import pathlib
import tempfile

import numpy as np
import pytest

from experiments import misclassification_sparsity as E
from noisejax import experiment
from noisejax.errors import ConfigError


def _tiny_config(parts):
  cfg = E.get_config("quick")
  cfg.parts = parts
  cfg.fig1.update(dict(d=8, seeds=2, steps=300, eval_every=100, n_test=64))
  cfg.data.limit = 100
  cfg.mnist.update(dict(hidden=16, epochs=1, eval_every=50, eval_limit=200, num_histograms=6))
  return cfg


def test_fig1_records_and_end_to_end():
  cfg = _tiny_config(("fig1",))
  records, width = E.fig1_records(cfg)
  assert width == 32
  assert records["test_error"].shape == (2, 2, 4)
  # Active neurons are counts out of `width`, errors are fractions.
  assert np.all((records["active_train"] >= 0) & (records["active_train"] <= width))
  assert np.all((records["test_error"] >= 0) & (records["test_error"] <= 1))
  # Both p start from the same seeds' data and initialization.
  np.testing.assert_allclose(records["test_error"][0, :, 0], records["test_error"][1, :, 0])

  workdir = pathlib.Path(tempfile.mkdtemp())
  claims = experiment.execute("misclassification_sparsity", cfg, workdir, E.run)
  assert [c.id for c in claims] == ["fig1_noise_lowers_test_error", "fig1_noise_sparsifies",
                                    "fig1_fits_training_set"]
  assert (workdir / "fig1_hypercube.png").exists()
  assert len(json.loads((workdir / "claims.json").read_text())) == 3
  # The run's own records are the ones fig1_records gives (same seeds, deterministic).
  final = json.loads((workdir / "fig1_hypercube.json").read_text())["final"]
  tail = records["test_error"].mean(1)[:, -1:].mean(-1)
  assert final["test_error"]["p=0"] == pytest.approx(float(tail[0]), abs=1e-6)


@pytest.mark.slow
def test_mnist_end_to_end():
  workdir = pathlib.Path(tempfile.mkdtemp())
  claims = experiment.execute("misclassification_sparsity", _tiny_config(("mnist",)), workdir,
                              E.run)
  assert {c.id for c in claims} == {"fig5_noise_sparsifies", "fig5_noise_test_error",
                                    "fig6_more_digit_associated", "sec64_softmax_denser"}
  summary = json.loads((workdir / "mnist.json").read_text())
  assert set(summary) == {"sum_logistic_p0", "sum_logistic_p0.1", "cross_entropy_p0",
                          "cross_entropy_p0.1"}
  counts = json.loads((workdir / "mnist_firing_counts.json").read_text())
  # Every training input is counted once per neuron that fires on it.
  assert np.asarray(counts["sum_logistic_p0"]).shape == (16, 10)
  for name in ("fig5_mnist.png", "fig6_histograms_p0.png", "fig6_histograms_p0.1.png"):
    assert (workdir / name).exists()


def test_unknown_part_is_a_config_error():
  with pytest.raises(ConfigError):
    experiment.execute("misclassification_sparsity", _tiny_config(("fig7",)),
                       tempfile.mkdtemp(), E.run)


def test_cifar_part_on_stand_in_images(monkeypatch):
  """The §6.4 path (train.fit, label smoothing, per-layer sparsity) on 64 random images."""
  from noisejax import data
  rng = np.random.default_rng(0)

  def fake_load(name, split="train", **kwargs):
    n = 64 if split == "train" else 32
    return data.Dataset(rng.normal(size=(n, 32, 32, 3)).astype(np.float32),
                        rng.integers(0, 10, n).astype(np.int32), 10, name)

  monkeypatch.setattr(E.data, "load", fake_load)
  cfg = _tiny_config(("cifar",))
  cfg.optim.update(dict(batch_size=32, epochs=1, checkpoint_every=1))
  # A small MLP stands in for ResNet-20 (whose compile alone takes ~30 s on a CPU).
  cfg.cifar.update(dict(model="mlp", sparsity_limit=32, penultimate="hidden_1",
                        deep_prefix="hidden_1"))
  workdir = pathlib.Path(tempfile.mkdtemp())
  claims = experiment.execute("misclassification_sparsity", cfg, workdir, E.run)
  assert {c.id for c in claims} == {"sec64_cifar_label_smoothing_sparsifies",
                                    "sec64_cifar_deeper_layers_sparser", "sec64_cifar_accuracy"}
  result = json.loads((workdir / "cifar_sparsity.json").read_text())
  assert result["ce"]["sizes"] == {"hidden_0": 512, "hidden_1": 512}
  assert all(0 <= v <= 1 for v in result["ls"]["sparsity_test"].values())
  assert (workdir / "sec64_cifar_sparsity.png").exists()
