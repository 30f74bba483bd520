"""Stochastic label noise (Chen et al., ICLR 2021): SLN against inherent label noise.

  methods     Tables 1–2 and Figs. 1, 3, 4, 6, 8, 10: CE, GCE (truncated), Co-teaching,
              PHuber-CE, LS, SLN, SLN-MO and SLN-MO-LC (and the reversed LC weighting)
              on symmetric and asymmetric noise, the SLN σ sweep, per-sample records at
              the end, seconds per epoch of every method.
  sgd_noise   Figs. 2 and 5, App. E: SGD noise on the parameter gradient (eq. 1) and on
              the output gradient (eq. 2) at three levels each against CE and SLN (eq. 3);
              filter-normalized loss landscapes and the noise energy at each solution.
  theory      Props. 1–3 exactly (float64, the Jacobian of each noisy gradient in its
              draw) and by Monte Carlo on a small network.
  more_noise  (opt-in: --config.parts=...,more_noise) the methods part on
              instance-dependent and open-set noise.

  python -m experiments.sln --preset quick   # ≈8 min on 2 CPU cores, mnist5k
  python -m experiments.sln --preset paper   # CIFAR-10 via TFDS, WRN-28-2, 5 seeds: GPU
  python -m experiments.sln --preset tiny    # seconds

Expect (quick): CE fits the flipped labels and its test accuracy falls ≈20 points from
its peak; SLN keeps a high loss on them and ends ≈10 points above CE, SLN-MO above SLN.
Methods: noisejax/methods.py; theory: noisejax/theory/sln.py; figures and claims:
experiments/sln_figures.py, sln_claims.py. TRAINING_CALLS: trainings per part (dry run).
"""

import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import sln_claims as judge, sln_figures as figures
from noisejax import config as cfg, data, experiment, noise, persample, train
from noisejax.errors import NonFiniteLossError
from noisejax.theory import sln as theory

NEVER = 1e9  # lc_epoch of runs without label correction


def _setting(noise_cfg, sigma, phuber_tau, ls_alpha, sweep=False):
  """One column of Tables 1–2: the noise and the method hyperparameters tuned for it."""
  return ml_collections.ConfigDict(dict(noise=noise_cfg, sigma=sigma, phuber_tau=phuber_tau,
                                        ls_alpha=ls_alpha, sigma_sweep=sweep))


def get_config(preset: str) -> ml_collections.ConfigDict:
  """quick: mnist5k (4,000 / 1,000), an MLP 784-256-256-10, 30 epochs, 5 seeds.

  Scaled down from App. B.1 (WRN-28-2 on CIFAR, 300 epochs, lr 0.001; kept: 5 seeds,
  momentum 0.9, weight decay 5e-4, batch 128): the data, the network, 30 epochs at lr
  0.02, and with them every schedule in epochs by 1/10 (label correction from epoch 25
  of 30 = the last sixth; GCE warm-up 5, pruning every epoch; Co-teaching's ramp 1 epoch)
  and the momentum model's α = 0.99 (31 steps per epoch instead of 390: the same ≈2-epoch
  memory as 0.999). σ = 0.5 for both noise types (the paper's C-10 value "otherwise"; its
  σ = 1 for symmetric noise underfits at this learning rate, as the σ sweep shows);
  PHuber τ and LS α are the paper's C-10 values. Asymmetric noise: an MNIST pair map
  (noise.MNIST_PAIR_MAP). Accuracy at the end: the mean of the last 5 evaluations.
  paper: App. B.1 verbatim on CIFAR-10 (Table 1), crop + flip. Table 2 (CIFAR-100):
  --config.data.name=cifar100 with σ 0.2 (dependent 0.1), τ 30, α 0.8, GCE warm-up 150
  and settings.asymmetric.noise.class_map=cifar100. tiny: 600 images, 4 epochs, 2 seeds.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.parts = ("methods", "sgd_noise", "theory")
  c.data = cfg.data("mnist5k", original_order=False)  # True: CIFAR in the CSV files' order
  c.model = cfg.model("mlp", hidden=(256, 256))
  c.optim = cfg.optim("momentum", lr=0.02, momentum=0.9, weight_decay=5e-4, batch_size=128,
                      epochs=30, checkpoint_every=5)
  c.seeds = 5
  c.last_evals = 5
  c.settings = ml_collections.ConfigDict(dict(
      symmetric=_setting(cfg.noise("symmetric_bernoulli", 0.4), 0.5, 2.0, 0.8, sweep=True),
      asymmetric=_setting(cfg.noise("pair", 0.4, class_map="mnist"), 0.5, 10.0, 0.5,
                          sweep=True)))
  c.more_settings = ml_collections.ConfigDict(dict(
      instance=_setting(cfg.noise("instance", 0.4), 0.5, 2.0, 0.8),
      open_set=_setting(cfg.noise("open_set", 0.4), 0.5, 2.0, 0.8)))
  c.instance_epochs = 10  # of the clean model whose averaged softmax makes instance noise
  c.sigma_grid = (0.1, 0.2, 0.5, 1.0)               # Fig. 6, on settings with sigma_sweep
  c.ema_decay = 0.99
  c.lc_epoch = 25
  c.gce = ml_collections.ConfigDict(dict(q=0.7, trunc_k=0.5, warm_epochs=5, prune_every=1))
  c.coteaching_ramp = 1
  c.sgd_noise = ml_collections.ConfigDict(dict(sigma_theta=(0.1, 0.3, 1.0),
                                               sigma_f=(0.1, 1.0, 2.0)))
  c.landscape = ml_collections.ConfigDict(dict(points=11, span=1.0, radius=0.5, samples=1000))
  c.timing_epochs = 5
  c.timing_methods = ("CE", "SLN", "SLN-MO", "SLN-MO-LC", "GCE", "Co-teaching", "PHuber-CE",
                      "LS")
  c.theory = ml_collections.ConfigDict(dict(draws=20000, inputs=5, hidden=8, classes=4))
  if preset == "paper":
    c.data = cfg.data("cifar10", original_order=False)
    c.model = cfg.model("wrn28_2")
    c.optim.update(dict(lr=0.001, epochs=300, augment="crop_flip", checkpoint_every=10,
                        runs_per_program=5))  # 35 WRNs at once do not fit one accelerator
    c.seeds, c.ema_decay, c.lc_epoch, c.last_evals = 5, 0.999, 250, 1
    c.settings.symmetric.sigma = 1.0
    c.settings.asymmetric.noise.class_map = "cifar10"
    c.gce.update(dict(warm_epochs=50, prune_every=10))
    c.coteaching_ramp, c.instance_epochs = 10, 150
    c.landscape.samples = 5000
  elif preset == "tiny":
    c.data.limit, c.data.test_limit = 600, 300
    c.model.hidden = (32,)
    c.optim.update(dict(epochs=4, checkpoint_every=1))
    c.seeds, c.lc_epoch, c.last_evals, c.instance_epochs = 2, 3, 2, 2
    c.sigma_grid = (0.2, 0.5)
    c.gce.warm_epochs = 2
    c.landscape.update(dict(points=5, samples=200))
    c.timing_epochs = 3
    c.timing_methods = ("CE", "SLN", "Co-teaching")
    del c.settings["asymmetric"]
    c.theory.draws = 4000
  return c


# ----------------------------------------------------------------------------
# Training many runs of one method in one program.


def _noise_draws(key, train_set, setting, seeds, config):
  """One draw of the setting's noise per seed: (labels per seed, inputs per seed or None)."""
  kind, rate = setting.noise.kind, setting.noise.rate
  extra = {k: v for k, v in setting.noise.items() if k not in ("kind", "rate")}
  keys = [jax.random.fold_in(key, s) for s in range(seeds)]
  num_classes = train_set.num_classes
  if kind == "open_set":  # CIFAR-10: CIFAR-100 images (§4); MNIST: pixel-permuted digits
    source = (data.load("cifar100", data_dir=config.data.get("data_dir")).x
              if config.data.name == "cifar10" else
              noise.pixel_permuted(jax.random.fold_in(key, 10**6), train_set.x))
    pairs = [noise.open_set(k, train_set.x, train_set.y, rate, source) for k in keys]
    return [p[1] for p in pairs], np.stack([p[0] for p in pairs])
  if kind == "instance":
    extra["probs_NxC"] = clean_model_probabilities(config, train_set, keys[0])
  draws = [noise.corrupt(k, train_set.y, num_classes, kind, rate, **extra) for k in keys]
  return draws, None


def clean_model_probabilities(config, train_set, key):
  """Instance-dependent noise (Chen et al. 2020a): the softmax of a model trained on the
  clean labels, averaged over its epochs (`noise.average_predictions`)."""
  probs = []
  record = lambda snap: probs.append(jax.nn.softmax(snap.predict(train_set.x), -1)) or {}
  clean = noise.corrupt(key, train_set.y, train_set.num_classes, "none", 0.0)
  optim = ml_collections.ConfigDict(dict(config.optim, epochs=config.instance_epochs))
  train.train_classifier(cfg.training(config.model, cfg.loss("cross_entropy"), optim),
                         train.Splits(train_set.x, clean, train_set.x[:1], train_set.y[:1]),
                         key=key, eval_fn=record)
  return noise.average_predictions(probs[1:])  # the epochs' ends, not the initialization


class Programs:
  """Runs of one setting: each run is (its seed's label draw and init key, hyperparameters)."""

  def __init__(self, run, config, key, train_set, test_set, setting, name):
    self.run, self.config, self.name = run, config, name
    self.train_set, self.test_set = train_set, test_set
    key_noise, key_init = jax.random.split(key)
    self.draws, self.x_per_seed = _noise_draws(key_noise, train_set, setting, config.seeds,
                                               config)
    self.keys_S = jax.random.split(key_init, config.seeds)

  def splits(self, seeds_R):
    labels = noise.stack([self.draws[s] for s in seeds_R])
    if self.x_per_seed is None:
      return train.Splits(self.train_set.x, labels, self.test_set.x, self.test_set.y)
    per_run = lambda a: np.broadcast_to(a, (len(seeds_R),) + a.shape)  # same test set
    return train.Splits(self.x_per_seed[np.asarray(seeds_R)], labels,
                        per_run(self.test_set.x), per_run(self.test_set.y), inputs_per_run=True)

  def train(self, label, loss, method, runs, hparams=None):
    """runs: [(variant, seed)]; hparams: {name: [value per run]}. -> (TrainResult, splits)"""
    seeds_R = [s for _, s in runs]
    splits = self.splits(seeds_R)
    config = cfg.training(self.config.model, loss, self.config.optim, method,
                          eval_loss=cfg.loss("cross_entropy"))
    result = self.run.train_classifier(
        config, splits, key=self.keys_S[np.asarray(seeds_R)], subdir=f"{self.name}/{label}",
        hparams={k: np.asarray(v, np.float32) for k, v in (hparams or {}).items()},
        run_labels=[{"variant": v, "seed": s} for v, s in runs])
    return result, splits


CURVES = ("test_error", "train_error", "clean_loss", "noisy_loss", "clean_error", "noisy_error")


def summarize(result, runs, variant, last: int, average: bool = False) -> dict:
  """One variant's curves (seeds × evaluations) and accuracies from its runs."""
  rows = [r for r, (v, _) in enumerate(runs) if v == variant]
  prefix = "average_" if average else ""
  curves = {k: result.curve(prefix + k)[rows] for k in CURVES}
  test_acc = 1.0 - curves["test_error"]
  return {"curves": curves, "epoch": result.curve("epoch")[0],
          "final_acc": test_acc[:, -last:].mean(axis=1), "peak_acc": test_acc.max(axis=1)}


def _per_sample(result, splits, runs, variant, average=False) -> dict:
  """Per-sample records at the end (Figs. 3–4) of every seed of a variant, stacked."""
  rows = [r for r, (v, _) in enumerate(runs) if v == variant]
  recs = [result.snapshot(r, splits).per_sample(average=average) for r in rows]
  return {k: np.stack([rec[k] for rec in recs]) for k in recs[0]}


def baselines(config, setting, rate) -> dict:
  """The baselines of Tables 1–2 as (loss, method) config pieces (App. B.1)."""
  gce = {k: v for k, v in config.gce.items() if k != "q"}
  cot = cfg.method("coteaching", forget_rate=rate, ramp_epochs=config.coteaching_ramp)
  return {"GCE": (cfg.loss("gce", q=config.gce.q), cfg.method("truncate", **gce)),
          "Co-teaching": (cfg.loss("cross_entropy"), cot),
          "PHuber-CE": (cfg.loss("phuber", tau=setting.phuber_tau), cfg.method("erm")),
          "LS": (cfg.loss("label_smoothing", alpha=setting.ls_alpha), cfg.method("erm"))}


def train_setting(run, config, key, train_set, test_set, setting, name) -> dict:
  """Every method of Tables 1–2 on one noise setting; the variants' summaries."""
  programs = Programs(run, config, key, train_set, test_set, setting, name)
  seeds, last, sigma = range(config.seeds), config.last_evals, setting.sigma
  ce = cfg.loss("cross_entropy")
  sigmas = sorted(set(config.sigma_grid) | {sigma}) if setting.sigma_sweep else [sigma]
  variants = [("CE", 0.0, NEVER, 0.0)] + [(f"SLN σ={s:g}", s, NEVER, 0.0) for s in sigmas]
  variants += [("SLN-MO-LC", sigma, config.lc_epoch, 0.0),
               ("LC reversed", sigma, config.lc_epoch, 1.0)]
  runs = [(v[0], s) for v in variants for s in seeds]
  hp = {k: [v[i] for v in variants for _ in seeds]
        for i, k in ((1, "sigma"), (2, "lc_epoch"), (3, "lc_reverse"))}
  result, splits = programs.train("sln", ce, cfg.method("sln_mo_lc", ema_decay=config.ema_decay),
                                  runs, hp)
  sln = f"SLN σ={sigma:g}"
  out = {"CE": summarize(result, runs, "CE", last), "SLN": summarize(result, runs, sln, last),
         "SLN-MO": summarize(result, runs, sln, last, average=True),
         "SLN-MO-LC": summarize(result, runs, "SLN-MO-LC", last, average=True),
         "LC reversed": summarize(result, runs, "LC reversed", last, average=True)}
  sweep = {s: summarize(result, runs, f"SLN σ={s:g}", last) for s in sigmas if len(sigmas) > 1}
  per_sample = {"CE": _per_sample(result, splits, runs, "CE"),
                "SLN": _per_sample(result, splits, runs, sln)}
  rate = float(np.mean([d.rate for d in programs.draws]))
  single = [("-", s) for s in seeds]
  for label, (loss, method) in baselines(config, setting, rate).items():
    res, _ = programs.train(label.lower(), loss, method, single)
    out[label] = summarize(res, single, "-", last)
  return {"variants": out, "sigma_sweep": sweep, "per_sample": per_sample,
          "noise_rate": rate, "sigma": sigma, "noise_kind": setting.noise.kind}


def time_methods(config, train_set, test_set, key) -> dict:
  """Seconds per epoch of one run of each method, one after the other (Table 1, Fig. 8):
  (least of 3 t(1 + E epochs) − least of 3 t(1 epoch)) / E after a compiling call."""
  setting = config.settings.symmetric
  draw = noise.corrupt(key, train_set.y, train_set.num_classes, "symmetric_bernoulli",
                       setting.noise.rate)
  splits = train.Splits(train_set.x, draw, test_set.x, test_set.y)
  ce, mo = cfg.loss("cross_entropy"), dict(ema_decay=config.ema_decay)
  methods = {"CE": (ce, cfg.method("erm")), "SLN": (ce, cfg.method("sln", sigma=setting.sigma)),
             "SLN-MO": (ce, cfg.method("sln_mo", sigma=setting.sigma, **mo)),
             "SLN-MO-LC": (ce, cfg.method("sln_mo_lc", sigma=setting.sigma, lc_epoch=0, **mo)),
             **baselines(config, setting, setting.noise.rate)}
  methods["GCE"][1].warm_epochs = 0  # pruning in every timed epoch

  def seconds(loss, method, epochs):
    optim = ml_collections.ConfigDict(dict(config.optim, epochs=epochs))
    start = time.perf_counter()
    result = train.train_classifier(cfg.training(config.model, loss, optim, method), splits,
                                    key=key)
    jax.block_until_ready(result.state.params)
    return time.perf_counter() - start

  out, extra = {}, config.timing_epochs
  for name in config.timing_methods:
    seconds(*methods[name], 1)  # compiles
    runs = [(seconds(*methods[name], 1 + extra), seconds(*methods[name], 1)) for _ in range(3)]
    out[name] = (min(a for a, _ in runs) - min(b for _, b in runs)) / extra
  return out


def compute_methods(config, run, settings_field="settings") -> dict:
  settings = config[settings_field]
  train_set, test_set = data.load_splits(config.data)
  out = {name: train_setting(run, config, jax.random.fold_in(run.key, i), train_set, test_set,
                             setting, name)
         for i, (name, setting) in enumerate(settings.items())}
  if settings_field == "settings":
    out["seconds_per_epoch"] = time_methods(config, train_set, test_set, run.key)
  return out


# ----------------------------------------------------------------------------
# SGD-noise variants (Fig. 5), their minima (Fig. 2, App. E).


def compute_sgd_noise(config, run) -> dict:
  train_set, test_set = data.load_splits(config.data)
  setting = config.settings.symmetric
  programs = Programs(run, config, run.key, train_set, test_set, setting, "sgd_noise")
  seeds, last, ce = range(config.seeds), config.last_evals, cfg.loss("cross_entropy")
  runs = [(v, s) for v in ("CE", "SLN") for s in seeds]
  result, splits = programs.train("ce_sln", ce, cfg.method("sln"), runs,
                                  {"sigma": [0.0 if v == "CE" else setting.sigma
                                             for v, _ in runs]})
  out = {"CE": summarize(result, runs, "CE", last), "SLN": summarize(result, runs, "SLN", last)}
  finals = {"CE": (result, splits, runs, "CE"), "SLN": (result, splits, runs, "SLN")}
  levels = {"eq1": ("param_noise", "sigma_theta"), "eq2": ("output_noise", "sigma_f")}
  for eq, (method, hparam) in levels.items():
    for i, sigma in enumerate(config.sgd_noise[hparam]):
      name, single = f"{eq} σ={sigma:g}", [("-", s) for s in seeds]
      try:
        res, spl = programs.train(f"{eq}_{i}", ce, cfg.method(method, **{hparam: sigma}), single)
      except NonFiniteLossError as e:  # the noise drove the weights to overflow
        out[name] = {"diverged": str(e)}
        continue
      out[name] = summarize(res, single, "-", last)
      if i == len(config.sgd_noise[hparam]) // 2:
        finals[eq] = (res, spl, single, "-")
  n = config.landscape.samples
  landscapes = {}
  for name, (res, spl, rs, variant) in finals.items():
    rows = [r for r, (v, _) in enumerate(rs) if v == variant]
    apply_fn = persample.eval_apply_fn(res.spec.model)
    landscapes[name] = [theory.minimum_report(
        apply_fn, res.snapshot(r, spl).variables["params"], jnp.asarray(train_set.x[:n]),
        jnp.asarray(spl.run(r).noisy.labels[:n]), jax.random.fold_in(run.key, 7 + s),
        **config.landscape.to_dict()) for s, r in enumerate(rows)]
  return {"variants": out, "landscapes": landscapes,
          "middle": {eq: f"{eq} σ={config.sgd_noise[h][len(config.sgd_noise[h]) // 2]:g}"
                     for eq, (_, h) in levels.items()}}


def compute_more_noise(config, run) -> dict:  # the methods part on more_settings
  return compute_methods(config, run, settings_field="more_settings")


def compute_theory(config, run) -> dict:
  t = config.theory
  return theory.check_propositions(run.key, inputs=t.inputs, hidden=t.hidden,
                                   classes=t.classes, draws=t.draws)


SEEDS_FIELD = "seeds"  # each program trains all seeds (noisejax.sweep: one job per point)
TRAINING_CALLS = {"methods": lambda c: 5 * len(c.settings),
                  "more_noise": lambda c: 5 * len(c.more_settings),
                  "sgd_noise": lambda c: 1 + len(c.sgd_noise.sigma_theta + c.sgd_noise.sigma_f)}

PARTS = {
    "methods": experiment.Part(compute_methods, figures.plot_methods, judge.methods),
    "sgd_noise": experiment.Part(compute_sgd_noise, figures.plot_sgd_noise, judge.sgd_noise),
    "theory": experiment.Part(compute_theory, figures.plot_theory, judge.theory),
    "more_noise": experiment.Part(compute_more_noise, figures.plot_methods, judge.more_noise),
}

if __name__ == "__main__":
  experiment.main("sln", get_config, PARTS)
