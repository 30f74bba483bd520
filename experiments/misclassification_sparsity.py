"""Misclassification paper: label noise sparsifies ReLU activity (Figs. 1, 5, 6, §6.4).

  fig1    hypercube-boundary function, d = 60, 4d ReLU neurons with bias, 4d points,
          ε = 0.3, h = 1/d, batch-1 SGD, p = 0 against p = 0.2 (each step's label is
          resampled with probability p: method "resample").
  mnist   Figs. 5–6: MNIST, 600 ReLU neurons, sum of 10 logistic losses with ±1 targets
          (eq. 3), h = 0.01 halved every 5 epochs, batch 1, p = 0 against 0.1: active
          fraction, errors, firing histograms, digit-associated neurons (Appendix F); the
          same with softmax cross-entropy.
  cifar   §6.4: CIFAR-10 ResNet-20 with and without label smoothing 0.1, active fraction
          per layer (paper preset only; prepare CIFAR-10 with `python -m noisejax.data`).

  python -m experiments.misclassification_sparsity --preset quick   # ≈1.5–2 min, 2 CPU cores
  python -m experiments.misclassification_sparsity --preset paper   # full MNIST + CIFAR-10, GPU
  python -m experiments.misclassification_sparsity --preset tiny    # seconds

Every training is `train.train_classifier` (all p and seeds of one loss in one program);
SGD runs epochs of random permutations of the training set (the paper counts epochs).

Expect (quick): Fig. 1 test error ≈0.36 (p = 0) against ≈0.20 (p = 0.2), ≈117 against
≈46 active neurons of 240; MNIST (mnist5k) active fraction ≈0.32 (p = 0) against ≈0.09
(p = 0.1), ≈80 against ≈270 digit-associated neurons of 600; the test error with noise
stays ≈1 point worse on mnist5k and softmax CE is not denser (both claims fail there).
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import misclassification_sparsity_figures as figures
from noisejax import claims, config as cfg, data, experiment, losses, noise, sparsity
from noisejax import synthetic, train
from noisejax.errors import ConfigError, check_choice

PAPER = "misclassification"
CURVES = ("train_error", "test_error", "active_train", "active_test")
FINAL = {"active_train": "active_fraction", "active_test": "active_test",  # summary: final
         "digit_associated": "associated", "never_fire": "never_fire"}


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: Fig. 1 with the paper's 20 seeds and 2·10⁵ steps; MNIST on mnist5k, 8 seeds, 20
  epochs; no CIFAR.

  Scaled in quick: Fig. 1 runs 833 epochs of its 240 points (2·10⁵ batch-1 steps; the
  paper trains "until the test error stabilizes", paper runs 4·10⁵); MNIST uses the
  4,000/1,000 mnist5k digits, 8 seeds (the paper shows one run), 20 epochs (h = 0.01
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
  c.fig1.model = cfg.model("mlp", hidden=(240,), weight_init="uniform_sqrt3")
  c.fig1.loss = cfg.loss("logistic")
  c.fig1.optim = cfg.optim("sgd", lr=1 / 60, batch_size=1, epochs=833, eval_every=10_000,
                           checkpoint_every=833)  # checkpoints every 833 epochs and at the end
  c.data = cfg.data("mnist5k")
  c.mnist = ml_collections.ConfigDict(dict(
      p=(0.0, 0.1), losses=("sum_logistic", "cross_entropy"), seeds=8, eval_limit=10_000,
      num_histograms=30, association_ratio=2.0))
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
    c.fig1.optim.epochs = 1666  # 4·10⁵ steps
    c.data.name = "mnist"
    c.mnist.optim.update(dict(epochs=30, eval_every=10_000))
  elif preset == "tiny":
    c.fig1.update(dict(d=8, num_train=32, num_test=256, seeds=2))
    c.fig1.model.hidden = (32,)
    c.fig1.optim.update(dict(lr=1 / 8, epochs=100, eval_every=800))
    c.data.limit = 200
    c.mnist.update(dict(eval_limit=200, num_histograms=6, seeds=2))
    c.mnist.model.hidden = (16,)
    c.mnist.optim.update(dict(epochs=2, decay_every=1, eval_every=100, checkpoint_every=1))
  return c


def validate(config):
  """Experiment-specific fields; the shared pieces are checked by the runner."""
  for k in ("fig1", "mnist"):
    if not all(0 <= p <= 1 for p in config[k].p):
      raise ConfigError(f"{k}.p", config[k].p, reason="resampling rates lie in [0, 1]")
    if not config[k].seeds >= 1:
      raise ConfigError(f"{k}.seeds", config[k].seeds, reason="must be >= 1")
  m = config.mnist
  if not m.num_histograms <= m.model.hidden[0]:
    raise ConfigError("mnist.num_histograms", m.num_histograms, reason="> hidden neurons")
  for loss in m.losses:
    check_choice("mnist.losses", loss, tuple(l for l in losses.LOSSES
                                             if l not in losses.BINARY))


def _runs(run, part, loss, splits, keys_S, p_P, eval_fn, subdir):
  """Every (p, seed) of method "resample" in one program: run r = i·S + s has p_P[i] and
  seed s; one seed gives every p the same initialization and data order."""
  training = cfg.training(part.model, loss, part.optim, cfg.method("resample"))
  S = len(keys_S)
  keys_R = jnp.concatenate([keys_S] * len(p_P))
  p_R = np.repeat(np.asarray(p_P, np.float32), S)
  labels = [{"p": float(p), "seed": s} for p in p_P for s in range(S)]
  return run.train_classifier(training, splits, key=keys_R, hparams={"p": p_R},
                              run_labels=labels, eval_fn=eval_fn, subdir=subdir)


def _clean(labels_N, num_classes):  # the label noise is per step (method "resample")
  return noise.corrupt(None, labels_N, num_classes, "none", 0.0)


# ----------------------------------------------------------------------------------------
# Fig. 1: the hypercube-boundary function.


def compute_fig1(config, run) -> dict:
  c = config.fig1
  n, P, S = c.num_train, len(c.p), c.seeds
  keys_S = jax.random.split(run.key, S)  # seed s: its data and its training key
  # n training and num_test test points of D per seed, drawn together (one compiled draw).
  x_SxNxD, y_SxN = map(np.asarray, jax.vmap(lambda k: synthetic.hypercube_boundary(
      jax.random.fold_in(k, 0), n + c.num_test, c.d, c.eps))(keys_S))
  per_run = lambda a: np.concatenate([a] * P)  # R = P·S runs, run r = i·S + s
  y01_RxN = per_run((y_SxN + 1) // 2)
  splits = train.Splits(
      per_run(x_SxNxD[:, :n]), noise.stack([_clean(y, 2) for y in y01_RxN[:, :n]]),
      per_run(x_SxNxD[:, n:]), y01_RxN[:, n:], inputs_per_run=True)
  train_keys_S = jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys_S)
  result = _runs(run, c, c.loss, splits, train_keys_S, c.p,
                 sparsity.activity_eval_fn(count=True), "fig1")
  return dict(p=list(c.p), width=c.model.hidden[0],
              steps=np.asarray([r["step"] for r in result.histories[0]]),
              curves={k: result.curve(k).reshape(P, S, -1) for k in CURVES})  # P×S×T


def _last_quarter(values_xT):
  """The mean over the last quarter of the evaluations (last axis), once settled."""
  values_xT = np.asarray(values_xT)
  return values_xT[..., -max(1, values_xT.shape[-1] // 4):].mean(-1)


def claims_fig1(record, config) -> list:
  """Over seeds: paired differences and ratios between p = 0 and p > 0, seed by seed."""
  curves = record["curves"]  # P×S×T
  te, mins = _last_quarter(curves["test_error"]), curves["train_error"].min(-1)
  p0, p1 = f"p={record['p'][0]:g}", f"p={record['p'][-1]:g}"
  diff = claims.SeedStats.of(te[-1] - te[0])
  ratios = {where: claims.SeedStats.of(_last_quarter(curves[k][-1]) / _last_quarter(curves[k][0]))
            for where, k in (("training", "active_train"), ("test", "active_test"))}
  seeds = f"{diff.n} paired seeds"
  return [
      claims.claim(
          "fig1_noise_lowers_test_error", PAPER,
          f"Fig. 1a: on the hypercube-boundary function, training with {p1} gives a much "
          f"lower test error than p = 0 (paper: 21% against 49%; {seeds})",
          [claims.check_ci(f"test error({p1}) − test error({p0}) (last quarter of the "
                           "evaluations)", diff, "below", -0.05)],
          {p0: claims.SeedStats.of(te[0]).measured(), p1: claims.SeedStats.of(te[-1]).measured(),
           "difference": diff.measured()}),
      claims.claim(
          "fig1_noise_sparsifies", PAPER,
          f"Fig. 1b: with {p1} fewer neurons fire per input (paper: ≈47 (20%) against ≈94 "
          f"(40%) of {record['width']}; {seeds})",
          [claims.check_ci(f"active neurons({p1}) / active neurons({p0}), {where} inputs",
                           r, "below", 0.75) for where, r in ratios.items()],
          {where: r.measured() for where, r in ratios.items()}),
      claims.claim(
          "fig1_fits_training_set", PAPER,
          "Fig. 1a: both networks fit the training set (clean labels)",
          [claims.check_every_seed(f"min training error, {p0}", mins[0], "==", 0),
           claims.check_every_seed(f"min training error, {p1} (0 in the paper after longer "
                                   "training)", mins[-1], "<=", 0.05)],
          {p0: mins[0], p1: mins[-1]}),
  ]


# ----------------------------------------------------------------------------------------
# Figs. 5–6: MNIST.


def compute_mnist(config, run) -> dict:
  c = config.mnist
  train_set, test_set = data.load_splits(config.data)
  key_eval, key_chosen, key_seeds = jax.random.split(run.key, 3)
  splits = train.Splits(train_set.x, _clean(train_set.y, train_set.num_classes), test_set.x,
                        test_set.y)
  eval_idx = np.asarray(jax.random.permutation(key_eval, len(train_set)))[:c.eval_limit]
  eval_fn = sparsity.activity_eval_fn(x_train=jnp.asarray(train_set.x[eval_idx]),
                                      x_test=jnp.asarray(test_set.x[:c.eval_limit]))
  S, keys_S = c.seeds, jax.random.split(key_seeds, c.seeds)  # the same for every loss
  runs = {}
  for loss in c.losses:
    result = _runs(run, c, cfg.loss(loss), splits, keys_S, c.p, eval_fn, f"mnist_{loss}")
    for i, p in enumerate(c.p):
      seeds = range(i * S, (i + 1) * S)
      runs[f"{loss}_p{p:g}"] = dict(
          curves={k: result.curve(k)[seeds.start:seeds.stop] for k in CURVES},  # S×T
          final=[sparsity.trained_activity(result.snapshot(r, splits), train_set, test_set,
                                             c.association_ratio) for r in seeds])
  epochs = np.asarray([r["epoch"] for r in result.histories[0]])
  chosen = jax.random.choice(key_chosen, c.model.hidden[0], (c.num_histograms,),
                             replace=False)
  return dict(runs=runs, epochs=epochs, chosen=np.asarray(chosen), p=list(c.p),
              losses=list(c.losses), hidden=c.model.hidden[0])


def mnist_per_seed(record) -> dict:
  """Per (loss, p): every seed's final activity and its test error averaged over the last
  quarter of the evaluations, as arrays over seeds."""
  return {name: {**{k: np.asarray([f[v] for f in r["final"]], float) for k, v in FINAL.items()},
                 "test_error_last_quarter": _last_quarter(r["curves"]["test_error"])}
          for name, r in record["runs"].items()}


def claims_mnist(record, config) -> list:
  """Over seeds: every comparison pairs runs of the same seed (same init and data order)."""
  per_seed, p = mnist_per_seed(record), record["p"]
  first = record["losses"][0]
  s0, s1 = per_seed[f"{first}_p{p[0]:g}"], per_seed[f"{first}_p{p[-1]:g}"]
  stats = claims.SeedStats.of
  noisy = f"p={p[-1]:g}"
  ratio = {where: stats(s1[k] / s0[k]) for where, k in (("training", "active_train"),
                                                        ("test", "active_test"))}
  test_diff = stats(s1["test_error_last_quarter"] - s0["test_error_last_quarter"])
  assoc_diff = stats(s1["digit_associated"] - s0["digit_associated"])
  seeds = f"{test_diff.n} paired seeds"
  out = [
      claims.claim(
          "fig5_noise_sparsifies", PAPER,
          f"Fig. 5a: on MNIST with the loss of eq. 3, {noisy} gives a much sparser hidden "
          f"layer (paper: 6% against 25% active; {seeds})",
          [claims.check_ci(f"active fraction({noisy}) / active fraction(p=0), {where} inputs",
                           r, "below", 0.5) for where, r in ratio.items()],
          {where: r.measured() for where, r in ratio.items()}),
      claims.claim(
          "fig5_noise_test_error", PAPER,
          f"Fig. 5b: training with {noisy} gives a better test error than p = 0 ({seeds})",
          [claims.check_ci(f"test error({noisy}) − test error(p=0) (last quarter of the "
                           "evaluations)", test_diff, "below", 0)],
          {"p=0": stats(s0["test_error_last_quarter"]).measured(),
           noisy: stats(s1["test_error_last_quarter"]).measured(),
           "difference": test_diff.measured()}),
      claims.claim(
          "fig6_more_digit_associated", PAPER,
          "Appendix F / Fig. 6: more hidden neurons are digit associated (fire ≥ 2× as "
          f"often for one digit as for any other) with {noisy} (paper: 222 against 104 of "
          f"{record['hidden']}; {seeds})",
          [claims.check_ci(f"digit-associated neurons({noisy}) − (p=0)", assoc_diff, "above",
                           0)],
          {"p=0": s0["digit_associated"], noisy: s1["digit_associated"],
           "difference": assoc_diff.measured()}),
  ]
  if "cross_entropy" in record["losses"] and first != "cross_entropy":
    denser = {q: stats(per_seed[f"cross_entropy_p{q:g}"]["active_train"]
                       - per_seed[f"{first}_p{q:g}"]["active_train"]) for q in p}
    out.append(claims.claim(
        "sec64_softmax_denser", PAPER,
        "§6.4: the loss of eq. 3 gives sparser representations than softmax cross-entropy "
        f"({seeds}, the same initialization for both losses)",
        [claims.check_ci(f"active fraction, softmax CE − eq. 3, p = {q:g}", d, "above", 0)
         for q, d in denser.items()],
        {f"p={q:g}": d.measured() for q, d in denser.items()}))
  return out


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


def claims_cifar(record, config) -> list:
  c, ce, ls = config.cifar, record["ce"], record["ls"]
  penult = c.penultimate
  deeper = [k for k in ce["sparsity_test"] if k.startswith(c.deep_prefix)]
  return [
      claims.claim(
          "sec64_cifar_label_smoothing_sparsifies", PAPER,
          f"§6.4: {c.model.name} on CIFAR-10 with label smoothing 0.1 has a sparser penultimate"
          f" layer ({ce['sizes'][penult]} units; paper: 27.5% against 46.9% active)",
          [claims.check("active fraction (test inputs) with LS", ls["sparsity_test"][penult],
                        "<", 0.8 * ce["sparsity_test"][penult], "0.8 × without =")],
          dict(ce=ce["sparsity_test"][penult], ls=ls["sparsity_test"][penult])),
      claims.claim(
          "sec64_cifar_deeper_layers_sparser", PAPER,
          "§6.4: deeper layers are sparser with label smoothing",
          [claims.check(f"{k}: active fraction with LS", ls["sparsity_test"][k], "<",
                        ce["sparsity_test"][k], "without") for k in deeper],
          {k: (ce["sparsity_test"][k], ls["sparsity_test"][k]) for k in deeper}),
      claims.claim(
          "sec64_cifar_accuracy", PAPER,
          "§6.4: both networks reach about 92% test accuracy",
          [claims.check(f"min test accuracy (augmentation: {c.optim.augment})",
                        min(ce["test_accuracy"], ls["test_accuracy"]), ">=", 0.88)],
          dict(ce=ce["test_accuracy"], ls=ls["test_accuracy"])),
  ]


PARTS = {
    "fig1": experiment.Part(compute_fig1, figures.plot_fig1, claims_fig1),
    "mnist": experiment.Part(compute_mnist, figures.plot_mnist, claims_mnist),
    "cifar": experiment.Part(compute_cifar, figures.plot_cifar, claims_cifar),
}

if __name__ == "__main__":
  experiment.main("misclassification_sparsity", get_config, PARTS, validate=validate)
