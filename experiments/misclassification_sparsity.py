"""Misclassification paper: label noise sparsifies ReLU activity (Figs. 1, 5, 6, §6.4).

  fig1    hypercube-boundary function, d = 60, 4d ReLU neurons with bias, 4d points,
          ε = 0.3, h = 1/d, batch-1 SGD, p = 0 against p = 0.2 (each step's label is
          resampled with probability p: method "resample"); App. A's a(p) on a grid of p
          after a shorter run; §6.3's hand-built sparse network on the same test points.
  mnist   Figs. 5–6: MNIST, 600 ReLU neurons, sum of 10 logistic losses with ±1 targets
          (eq. 3), h = 0.01 halved every 5 epochs, batch 1, p = 0 against 0.1: active
          fraction, errors, firing histograms, digit-associated neurons (Appendix F); the
          same with softmax cross-entropy, and (§6.5) softmax CE with label smoothing 0.1.
  cifar   §6.4: CIFAR-10 ResNet-20 with and without label smoothing 0.1, active fraction
          per layer (paper preset only; prepare CIFAR-10 with `python -m noisejax.data`).

  python -m experiments.misclassification_sparsity --preset quick   # ≈6 min, 2 CPU cores
  python -m experiments.misclassification_sparsity --preset paper   # full MNIST + CIFAR-10, GPU
  python -m experiments.misclassification_sparsity --preset tiny    # seconds

Every training is `train.train_classifier` (all p and seeds of one loss in one program);
SGD runs epochs of random permutations of the training set (the paper counts epochs).

Expect (quick): Fig. 1 test error ≈0.35 (p = 0) against ≈0.16 (p = 0.2), ≈117 against
≈29 active neurons of 240 after 4·10⁵ steps (p = 0.2 still falls ≈1 point per 10⁵ steps:
fig1_test_error_stabilized fails); the paper's p = 0 has 49% and 94: our p = 0 net fits
its 240 points within 10⁴ steps and then barely moves (117 of the 120 neurons active at
initialization stay active); fan-in, Glorot and He initializations give the same (32–35%,
116–120), so the cause is not found. a(p) falls smoothly, 117 → 98 over p = 0 … 0.2 at
2·10⁴ steps. §6.3's hand-built net errs on ≈4.6% of D (a C_1 input on which few units
fire has N(x) = ΣReLU − 0.5 < 0) and has 1 + (d − 1)ε/2 ≈ 9.9 active units
on C_1, not dε = 18 (sec63_sparse_net fails). MNIST (mnist5k) active fraction ≈0.32
(p = 0) against ≈0.09 (p = 0.1), ≈80 against ≈270 digit-associated neurons of 600; the
test error with noise does not improve on mnist5k (paired difference +0.001, CI [−0.002,
0.004]) and softmax CE is not denser (both claims fail there). The claims are in
misclassification_claims.py.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import misclassification_claims as judge
from experiments import misclassification_sparsity_figures as figures
from noisejax import config as cfg, data, experiment, losses, noise, sparsity
from noisejax import synthetic, train
from noisejax.errors import ConfigError, check_choice
from noisejax.theory import pure_noise as pn

CURVES = ("train_error", "test_error", "active_train", "active_test")
LAYER = "hidden_0"  # the hidden layer whose activity evaluation reports (Definition 1)


def _curve(result, key: str, activity: str):
  """Curve `key` of CURVES, runs × evaluations; active_*: the evaluation's E_x A_N(x)
  (activity "units", Fig. 1) or E_x A_N(x)/units ("fraction", MNIST)."""
  return result.curve(key.replace("active_", f"active_{activity}_"))


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: Fig. 1 with the paper's 20 seeds and 4·10⁵ steps; MNIST on mnist5k, 8 seeds, 20
  epochs; no CIFAR.

  Scaled in quick: Fig. 1 runs 1,666 epochs of its 240 points (4·10⁵ batch-1 steps; the
  paper trains "until the test error stabilizes"), a(p) 2·10⁴ steps on 8 seeds; MNIST uses
  the 4,000/1,000 mnist5k digits, 8 seeds (the paper shows one run), 20 epochs (h = 0.01
  halved every 5 epochs). Every (p, seed) of one loss trains in one program; seed s gives
  every p and both losses the same initialization and data order, so the claims compare
  paired runs. Sizes, losses, h, p, batch 1 are the paper's. Fig. 1's width, n
  and h follow d (4d, 4d, 1/d): set fig1.model.hidden, num_train, optim.lr with fig1.d.
  MNIST uses the fan-in-scaled init ("torch", U[±1/√fan_in]), not §6's U[−√3, √3], which
  on 784 standardized pixels kills the p = 0.1 net (mnist5k, 10 epochs: 0.5% of the
  neurons active, 33% test error against 7% at p = 0; run it with
  `--config.mnist.model.weight_init=uniform_sqrt3`). paper adds §6.4's CIFAR-10 ResNet-20
  (Idelbayev's schedule, crop and flip). tiny: Fig. 1 at d = 8, 2 seeds, 100 epochs;
  MNIST on 200 digits, 16 neurons, 2 epochs.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.parts = ("fig1", "mnist")
  c.fig1 = ml_collections.ConfigDict(dict(d=60, eps=0.3, num_train=240, num_test=2000,
                                          p=(0.0, 0.2), seeds=20))
  c.fig1.a_of_p = ml_collections.ConfigDict(dict(p=(0.0, 0.05, 0.1, 0.15, 0.2), seeds=8,
                                                 epochs=83))  # 2·10⁴ steps
  c.fig1.model = cfg.model("mlp", hidden=(240,), weight_init="uniform_sqrt3")
  c.fig1.loss = cfg.loss("logistic")
  c.fig1.optim = cfg.optim("sgd", lr=1 / 60, batch_size=1, epochs=1666, eval_every=10_000,
                           checkpoint_every=1666)  # 4·10⁵ steps, checkpoint at the end
  c.data = cfg.data("mnist5k")
  c.mnist = ml_collections.ConfigDict(dict(
      p=(0.0, 0.1), losses=("sum_logistic", "cross_entropy"), seeds=8,
      num_histograms=30, association_ratio=2.0, smoothing=0.1))  # §6.5: softmax CE + LS
  c.mnist.model = cfg.model("mlp", hidden=(600,), weight_init="torch")
  c.mnist.optim = cfg.optim("sgd", lr=0.01, batch_size=1, epochs=20, schedule="step",
                            decay_every=5, decay_factor=0.5, eval_every=2_000,
                            checkpoint_every=5, runs_per_program=4)  # 4 runs' weights fit
  # in a CPU's cache: 2.4× faster per run than 16 at once (python -m experiments.bench_seeds)
  # The paper's 4096-unit "penultimate layer" is ResNet-20's last block output.
  c.cifar = ml_collections.ConfigDict(dict(smoothing=0.1, sparsity_limit=10_000,
                                           penultimate="stage3_block2/out",
                                           deep_prefix="stage3"))
  c.cifar.data, c.cifar.model = cfg.data("cifar10"), cfg.model("resnet20")
  c.cifar.optim = cfg.optim("momentum", lr=0.1, momentum=0.9, weight_decay=1e-4,
                            schedule="step", decay_every=100, decay_factor=0.1,
                            batch_size=128, epochs=200, checkpoint_every=10,
                            augment="crop_flip")
  if preset == "paper":
    c.parts = ("fig1", "mnist", "cifar")
    c.fig1.seeds = 20
    c.data.name = "mnist"
    c.mnist.optim.update(dict(epochs=30, eval_every=10_000))
  elif preset == "tiny":
    c.fig1.update(dict(d=8, num_train=32, num_test=256, seeds=2))
    c.fig1.a_of_p.update(dict(p=(0.0, 0.1, 0.2), seeds=2, epochs=10))
    c.fig1.model.hidden = (32,)
    c.fig1.optim.update(dict(lr=1 / 8, epochs=100, eval_every=800))
    c.data.limit = 200
    c.mnist.update(dict(num_histograms=6, seeds=2))
    c.mnist.model.hidden = (16,)
    c.mnist.optim.update(dict(epochs=2, decay_every=1, eval_every=100, checkpoint_every=1))
  return c


def validate(config):
  """Experiment-specific fields; the shared pieces are checked by the runner."""
  for k in ("fig1", "mnist", "fig1.a_of_p"):
    c = config.fig1.a_of_p if k == "fig1.a_of_p" else config[k]
    if not all(0 <= p <= 1 for p in c.p):
      raise ConfigError(f"{k}.p", c.p, reason="resampling rates lie in [0, 1]")
    if not config[k].seeds >= 1:
      raise ConfigError(f"{k}.seeds", config[k].seeds, reason="must be >= 1")
  if not 1 <= config.fig1.a_of_p.seeds <= config.fig1.seeds:
    raise ConfigError("fig1.a_of_p.seeds", config.fig1.a_of_p.seeds,
                      reason="must lie in [1, fig1.seeds]")
  m = config.mnist
  if not m.num_histograms <= m.model.hidden[0]:
    raise ConfigError("mnist.num_histograms", m.num_histograms, reason="> hidden neurons")
  for loss in m.losses:
    check_choice("mnist.losses", loss, tuple(l for l in losses.LOSSES
                                             if l not in losses.BINARY))


def _runs(run, part, loss, splits, keys_S, p_P, subdir):
  """Every (p, seed) of method "resample" in one program: run r = i·S + s has p_P[i] and
  seed s; one seed gives every p the same initialization and data order. Every
  evaluation reports LAYER's activity on the training and test inputs."""
  training = cfg.training(part.model, loss, part.optim, cfg.method("resample"),
                          eval_activity=LAYER)
  S = len(keys_S)
  keys_R = jnp.concatenate([keys_S] * len(p_P))
  p_R = np.repeat(np.asarray(p_P, np.float32), S)
  labels = [{"p": float(p), "seed": s} for p in p_P for s in range(S)]
  return run.train_classifier(training, splits, key=keys_R, hparams={"p": p_R},
                              run_labels=labels, subdir=subdir)


def _clean(labels_N, num_classes):  # the label noise is per step (method "resample")
  return noise.corrupt(None, labels_N, num_classes, "none", 0.0)


# ----------------------------------------------------------------------------------------
# Fig. 1: the hypercube-boundary function.


def _hypercube_splits(x_SxNxD, y_SxN, n, P):
  """R = P·S runs, run r = i·S + s on seed s's data: its first n points train, the rest
  test (labels 0/1, clean: the noise is resampled per step)."""
  per_run = lambda a: np.concatenate([a] * P)
  y01_RxN = per_run((y_SxN + 1) // 2)
  return train.Splits(
      per_run(x_SxNxD[:, :n]), noise.stack([_clean(y, 2) for y in y01_RxN[:, :n]]),
      per_run(x_SxNxD[:, n:]), y01_RxN[:, n:], inputs_per_run=True)


def compute_fig1(config, run) -> dict:
  c = config.fig1
  n, P, S = c.num_train, len(c.p), c.seeds
  keys_S = jax.random.split(run.key, S)  # seed s: its data and its training key
  # n training and num_test test points of D per seed, drawn together (one compiled draw).
  x_SxNxD, y_SxN = map(np.asarray, jax.vmap(lambda k: synthetic.hypercube_boundary(
      jax.random.fold_in(k, 0), n + c.num_test, c.d, c.eps))(keys_S))
  train_keys_S = jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys_S)
  result = _runs(run, c, c.loss, _hypercube_splits(x_SxNxD, y_SxN, n, P), train_keys_S,
                 c.p, "fig1")
  # App. A: a(p) on a grid of p, the first a_of_p.seeds seeds, a_of_p.epochs epochs.
  a = c.a_of_p
  short = c.copy_and_resolve_references()
  short.optim.update(dict(epochs=a.epochs, checkpoint_every=a.epochs,
                          eval_every=a.epochs * n))  # evaluated at the start and the end
  grid = _runs(run, short, c.loss, _hypercube_splits(x_SxNxD[:a.seeds], y_SxN[:a.seeds], n,
                                                     len(a.p)),
               train_keys_S[:a.seeds], a.p, "fig1_a_of_p")
  # §6.3's hand-built network on every seed's test points.
  net = pn.hypercube_sparse_net(c.d, c.eps)
  out_SxN, active_SxN = map(np.asarray, jax.vmap(lambda x: pn.sparse_net_outputs(net, x))(
      jnp.asarray(x_SxNxD[:, n:])))
  y_test_SxN = y_SxN[:, n:]
  return dict(p=list(c.p), width=c.model.hidden[0],
              steps=np.asarray([r["step"] for r in result.histories[0]]),
              curves={k: _curve(result, k, "units").reshape(P, S, -1) for k in CURVES},  # P×S×T
              a_of_p=dict(p=list(a.p), steps=int(grid.histories[0][-1]["step"]),
                          **{k: _curve(grid, k, "units")[:, -1].reshape(len(a.p), -1)
                             for k in ("active_train", "active_test")}),
              sparse_net=dict(
                  error=(np.where(out_SxN > 0, 1, -1) != y_test_SxN).mean(1),  # S
                  active_outer=np.asarray([a_N[y_N == 1].mean() for a_N, y_N in
                                           zip(active_SxN, y_test_SxN)]),
                  active_inner=np.asarray([a_N[y_N == -1].mean() for a_N, y_N in
                                           zip(active_SxN, y_test_SxN)]),
                  expected_outer=pn.hypercube_expected_active(c.d, c.eps)))


# ----------------------------------------------------------------------------------------
# Figs. 5–6: MNIST.


def compute_mnist(config, run) -> dict:
  c = config.mnist
  train_set, test_set = data.load_splits(config.data)
  _, key_chosen, key_seeds = jax.random.split(run.key, 3)
  splits = train.Splits(train_set.x, _clean(train_set.y, train_set.num_classes), test_set.x,
                        test_set.y)
  S, keys_S = c.seeds, jax.random.split(key_seeds, c.seeds)  # the same for every loss
  runs = {}
  for loss in c.losses:
    result = _runs(run, c, cfg.loss(loss), splits, keys_S, c.p, f"mnist_{loss}")
    for i, p in enumerate(c.p):
      seeds = range(i * S, (i + 1) * S)
      runs[f"{loss}_p{p:g}"] = dict(
          curves={k: _curve(result, k, "fraction")[seeds.start:seeds.stop]
                  for k in CURVES},  # S×T
          final=[sparsity.trained_activity(result.snapshot(r, splits), train_set, test_set,
                                             c.association_ratio) for r in seeds])
  if c.smoothing:  # §6.5: softmax CE with label smoothing (no label noise), p = 0
    result = _runs(run, c, cfg.loss("label_smoothing", alpha=c.smoothing), splits, keys_S,
                   (0.0,), "mnist_label_smoothing")
    runs["label_smoothing_p0"] = dict(
        curves={k: _curve(result, k, "fraction") for k in CURVES},
        final=[sparsity.trained_activity(result.snapshot(r, splits), train_set, test_set,
                                         c.association_ratio) for r in range(S)])
  epochs = np.asarray([r["epoch"] for r in result.histories[0]])
  chosen = jax.random.choice(key_chosen, c.model.hidden[0], (c.num_histograms,),
                             replace=False)
  return dict(runs=runs, epochs=epochs, chosen=np.asarray(chosen), p=list(c.p),
              losses=list(c.losses), hidden=c.model.hidden[0])


# ----------------------------------------------------------------------------------------
# §6.4: CIFAR-10, ResNet-20 with and without label smoothing.


def compute_cifar(config, run) -> dict:
  c = config.cifar
  train_set, test_set = data.load_splits(c.data)
  splits = train.Splits(train_set.x, _clean(train_set.y, train_set.num_classes),
                        test_set.x, test_set.y)
  results, limit = {}, c.sparsity_limit
  for name, loss in (("ce", cfg.loss("cross_entropy")),
                     ("ls", cfg.loss("label_smoothing", alpha=c.smoothing))):
    # One key for both: the same initialization, data order and augmentations.
    result = run.train_classifier(cfg.training(c.model, loss, c.optim), splits,
                                  key=run.key, subdir=f"cifar_{name}")
    snap = result.snapshot(0, splits)
    hidden = sparsity.activations_fn(snap.model, snap.variables)
    results[name] = dict(
        test_accuracy=1.0 - result.history[-1]["test_error"],
        sparsity_train=sparsity.dataset_sparsity(hidden, train_set.x[:limit], 500),
        sparsity_test=sparsity.dataset_sparsity(hidden, test_set.x[:limit], 500),
        sizes=sparsity.layer_sizes(hidden(train_set.x[:2])))
  return results


PARTS = {
    "fig1": experiment.Part(compute_fig1, figures.plot_fig1, judge.fig1),
    "mnist": experiment.Part(compute_mnist, figures.plot_mnist, judge.mnist),
    "cifar": experiment.Part(compute_cifar, figures.plot_cifar, judge.cifar),
}

if __name__ == "__main__":
  experiment.main("misclassification_sparsity", get_config, PARTS, validate=validate)
