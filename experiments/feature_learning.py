"""Label noise in the feature-learning process (Han et al., ICML 2025): Fig. 1, n·SNR² sweep,
early stopping and sample selection, and the real-data check.

Synthetic (paper §3): a two-layer ReLU patch CNN f = F₊₁ − F₋₁ (first layer trained, second
fixed at ±1/m) on x = [y·μ, ξ] with class-conditional label flips τ₊, τ₋, trained by
full-batch GD on the logistic loss in one jitted lax.scan, vmapped over seeds. The exact
decomposition w⁽ᵗ⁾ − w⁽⁰⁾ = j·γ‖μ‖⁻²μ + Σ_i ρ_i‖ξ_i‖⁻²ξ_i is solved at every recorded
iteration. Fig. 1: max γ, max ρ on clean and noisy samples, training accuracy (overall,
clean, noisy against the noisy labels), test error and every sample's loss with the log 2
line, with label noise and without; the Stage I / Stage II boundary T₁ is dashed. A sweep
over n·SNR² (≪ 1 to ≫ 1, vmapped over seeds) and over d/n at the chosen n·SNR². Real data:
two classes of MNIST (quick) or CIFAR-10 airplane/automobile with VGG-16 (paper), exactly
⌊0.2·N⌋ labels flipped, per-epoch accuracy on clean samples, on flipped samples against
their noisy labels, and clean test accuracy.

Command: python -m experiments.feature_learning --preset quick   (≈2 min of CPU time on 2 cores;
         ≈5 min wall on a busy machine)
Expect:  a Stage I window in every seed (clean samples fitted, noisy ones predicted as their
         true class, max γ above max ρ̄ of the noisy samples), then every noisy sample
         memorized while γ stays positive; the log 2 loss threshold separates clean from
         noisy samples at T₁; no window for n·SNR² ≪ 1; on MNIST the flipped samples are
         memorized epochs after the clean ones are fitted. The test error after
         convergence stays small at d = 20n (benign, see the README), so the claimed rise
         to ≥ 0.5·min(τ₊, τ₋) is not expected at this d/n.
"""

import math
import time

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import ml_collections
import numpy as np

from noisejax import data as data_lib
from noisejax import experiment, losses, models, noise, train
from noisejax.errors import ConfigError, check_choice
from noisejax.experiment import Claim
from noisejax.theory import feature_learning as fl

PAPER = "feature-learning"
REAL_MODELS = tuple(models.MODELS) + tuple(fl.VGG_CONFIGS)


def get_config(preset: str) -> ml_collections.ConfigDict:
  """Synthetic hyperparameters (the paper does not publish its own) and real-data setup.

  Why these values (quick): σ_ξ = 1, d = 2000, n = 100 (d = 20n, so the ξ_i are nearly
  orthogonal, |⟨ξ_i, ξ_k⟩|/‖ξ‖² ≈ d^{-1/2} = 0.02, and n is small relative to d);
  n·SNR² = 6, i.e. ‖μ‖ = √(6d/n)·σ_ξ ≈ 11.0 ≪ ‖ξ‖ ≈ 44.7. With all |ℓ'_i| = ½ at the start,
  one GD step adds η(1 − 2τ)‖μ‖²/(4m) to γ_{j,r} and ησ_ξ²d/(2nm) to ρ̄_{ỹ_i,r,i}, a ratio of
  (1 − 2τ)·n·SNR²/2: the signal outgrows ρ̄ only when this exceeds 1 (n·SNR² > 3.3 at
  τ = 0.2). n·SNR² = 6 gives 1.8, and still 1.4 if the Bernoulli flips realize τ = 0.25
  (one standard deviation above 0.2 at n = 100). τ₊ = τ₋ = 0.2 as the real-data check.
  m = 10 filters per class; σ₀ = 0.001 so ⟨w⁽⁰⁾, ξ⟩ ≈ σ₀σ_ξ√d = 0.045 is about two steps
  of ρ growth (the theory needs a small initialization). η = 0.02 sets the paper's time
  unit nm/(ησ_ξ²d) = 25 iterations (T₁ = Θ(η⁻¹nmσ_ξ⁻²d⁻¹)); T = 20,000 = 800 units
  lets the training loss converge far past memorization. Records are log-spaced.
  Real data (quick): mnist5k digits 0 and 1 (the public code's default pair; 800 train,
  200 test), LeNet-5, Adam 1.2e-3, batch 60, 60 epochs (the public code's defaults).

  paper: n = 200, d = 4000 (d = 20n, the same n·SNR², η and time unit 50 iterations), m = 20,
  5 seeds, T = 30,000, finer sweeps over n·SNR² and d/n (a GPU/TPU job); CIFAR-10
  airplane/automobile (5,000 + 5,000 train, 1,000 + 1,000 test), VGG-16 with BatchNorm,
  same optimizer. The paper's VGG depth and epochs are not stated beyond its code's defaults.
  """
  if preset not in experiment.PRESETS:
    raise ConfigError("preset", preset, experiment.PRESETS)
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.synthetic = ml_collections.ConfigDict(dict(
      n=100, d=2000, m=10, sigma0=0.001, sigma_xi=1.0, n_snr2=6.0, tau_pos=0.2, tau_neg=0.2,
      eta=0.02, steps=20000, records=200, seeds=3, n_test=1000))
  c.sweep = ml_collections.ConfigDict(dict(
      n_snr2=(0.1, 0.3, 1.0, 3.0, 6.0, 10.0, 30.0, 100.0),
      small=0.3,          # n·SNR² at or below this counts as ≪ 1
      theta_band=(6.0, 10.0),  # Θ(1) values where two stages are claimed
      large=100.0,        # n·SNR² at or above this counts as ≫ 1 (signal dominates)
      d_over_n=(1.5, 2, 5, 20),
      steps=3000, records=80, seeds=3))
  c.real = ml_collections.ConfigDict(dict(
      enabled=True,
      data=dict(name="mnist5k", classes=(0, 1), limit=None, data_dir=None),
      noise=dict(kind="symmetric_total", rate=0.2),
      model=dict(name="lenet5"),
      loss=dict(name="cross_entropy"),
      optim=dict(name="adam", lr=1.2e-3, momentum=0.0, weight_decay=0.0, schedule="constant",
                 batch_size=60, epochs=60, eval_every=0, checkpoint_every=20),
      fit_threshold=0.9,        # a subset counts as fitted at this accuracy on its labels
      memorize_threshold=0.5))  # flipped samples count as memorized at this accuracy
  if preset == "paper":
    c.synthetic.update(dict(n=200, d=4000, m=20, steps=30000, records=300, seeds=5,
                            n_test=2000))
    c.sweep.update(dict(n_snr2=(0.03, 0.1, 0.3, 1.0, 2.0, 3.0, 4.5, 6.0, 10.0, 30.0, 100.0,
                                300.0),
                        d_over_n=(1.5, 2, 3, 5, 10, 20, 40), steps=10000, records=120, seeds=5))
    c.real.data.classes = (0, 1)
    c.real.data.name = "cifar10"
    c.real.model.name = "vgg16"
  return c


# ----------------------------------------------------------------------------- synthetic

def _mu_norm(s, n_snr2, d=None, n=None):
  d = s.d if d is None else d
  n = s.n if n is None else n
  return math.sqrt(n_snr2 * d / n) * s.sigma_xi


def _check_synthetic(s):
  for field in ("n", "d", "m", "steps", "records", "seeds", "n_test"):
    if int(s[field]) < 1:
      raise ConfigError(f"synthetic.{field}", s[field], reason="must be a positive integer")
  if s.n + 1 > s.d:
    raise ConfigError("synthetic.d", s.d, reason=f"needs d >= n + 1 = {s.n + 1} for the exact "
                      "decomposition over span{μ, ξ_1..ξ_n}")
  for field in ("tau_pos", "tau_neg"):
    if not 0 <= s[field] < 0.5:
      raise ConfigError(f"synthetic.{field}", s[field], reason="must lie in [0, 0.5)")
  for field in ("eta", "sigma_xi", "n_snr2"):
    if not s[field] > 0:
      raise ConfigError(f"synthetic.{field}", s[field], reason="must be > 0")


def _run_synthetic(key, s, *, n_snr2, tau, d=None, steps=None, records=None, seeds=None):
  """Trains `seeds` runs; returns (steps, problem, per-seed analyses)."""
  d = s.d if d is None else d
  steps_list = fl.record_steps(steps or s.steps, records or s.records)
  problem = fl.make_problem(key, seeds or s.seeds, n=s.n, d=d, m=s.m,
                            mu_norm=_mu_norm(s, n_snr2, d), sigma_xi=s.sigma_xi,
                            sigma0=s.sigma0, tau_pos=tau[0], tau_neg=tau[1], n_test=s.n_test)
  _, trace = fl.run_problem(problem, s.eta, steps_list)
  trace = jax.device_get(trace)
  analyses = [fl.analyze(steps_list, jax.tree.map(lambda a, k=k: a[k], trace),
                         problem.y_SxN[k], problem.y_noisy_SxN[k], problem.is_noisy_SxN[k])
              for k in range(problem.y_SxN.shape[0])]
  return steps_list, problem, analyses


def _t1_stats(a, time_unit):
  """Numbers at T₁, at the end of the Stage I window and at the end of one run."""
  out = {"window": a["window"], "final": {
      "acc_clean": a["acc_clean"][-1], "acc_noisy": a["acc_noisy"][-1],
      "test_error": a["test_error"][-1], "gamma_max": a["gamma_max"][-1],
      "rho_bar_max_noisy": a["rho_bar_max_noisy"][-1],
      "frac_noisy_rho_over_gamma": a["frac_noisy_rho_over_gamma"][-1],
      **fl.separation_at(a["losses"], a["is_noisy"], -1)}}
  end = a["window_end_index"]
  if end is not None:
    out["signal_wins_fraction_of_window"] = a["signal_wins_fraction"]
    out["at_window_end"] = {"gamma_max": a["gamma_max"][end],
                            "rho_bar_max_noisy": a["rho_bar_max_noisy"][end]}
  i = a["t1_index"]
  if i is not None:
    out["t1"] = int(a["steps"][i])
    out["t1_in_time_units"] = a["steps"][i] / time_unit
    out["at_t1"] = {"test_error": a["test_error"][i], "gamma_max": a["gamma_max"][i],
                    "rho_bar_max_noisy": a["rho_bar_max_noisy"][i],
                    **fl.separation_at(a["losses"], a["is_noisy"], i)}
    out["gamma_min_after_t1"] = float(np.min(a["gamma_min"][i:]))
  return out


def _plot_dynamics(run, a_noise, a_clean, s, time_unit):
  fig, axes = plt.subplots(4, 2, figsize=(11, 12), sharex=True)
  for col, (a, title) in enumerate(((a_noise, f"label noise τ₊ = {s.tau_pos}, τ₋ = {s.tau_neg}"),
                                    (a_clean, "no label noise"))):
    t = np.maximum(a["steps"], 0.5)
    ax = axes[0, col]
    ax.plot(t, a["gamma_max"], "k", lw=2, label="max γ_{j,r}")
    ax.plot(t, a["rho_mean_clean"], "tab:blue", label="max_{j,r} ρ_{j,r,i}: clean (mean over i)")
    ax.plot(t, a["rho_max_clean"], "tab:blue", ls=":", label="clean (max over i)")
    if a["is_noisy"].any():
      ax.plot(t, a["rho_mean_noisy"], "tab:red", label="noisy (mean over i)")
      ax.plot(t, a["rho_max_noisy"], "tab:red", ls=":", label="noisy (max over i)")
    ax.set_ylabel("coefficient")
    ax.set_title(title)
    ax = axes[1, col]
    ax.plot(t, a["acc_train"], "k", label="train (given labels)")
    ax.plot(t, a["acc_clean"], "tab:blue", label="clean samples")
    if a["is_noisy"].any():
      ax.plot(t, a["acc_noisy"], "tab:red", label="noisy samples vs noisy labels")
    ax.set_ylabel("training accuracy")
    ax.set_ylim(-0.03, 1.03)
    ax = axes[2, col]
    ax.plot(t, a["test_error"], "tab:purple")
    ax.set_ylabel("test error (clean labels)")
    ax = axes[3, col]
    for i in np.flatnonzero(~a["is_noisy"]):
      ax.plot(t, a["losses"][:, i], color="tab:blue", lw=0.5, alpha=0.5)
    for i in np.flatnonzero(a["is_noisy"]):
      ax.plot(t, a["losses"][:, i], color="tab:red", lw=0.5, alpha=0.7)
    ax.axhline(fl.LOG2, color="k", ls="--", lw=1, label="log 2")
    ax.set_yscale("log")
    ax.set_ylabel("training loss per sample")
    ax.set_xlabel("GD iteration")
    for row in range(4):
      axes[row, col].set_xscale("log")
      if a_noise["t1_index"] is not None:
        axes[row, col].axvline(max(a_noise["steps"][a_noise["t1_index"]], 0.5), color="gray",
                               ls="--", lw=1, label="T₁ (Thm 4.1 holds)" if row == 1 else None)
      if a_noise["window_end_index"] is not None:
        axes[row, col].axvline(max(a_noise["steps"][a_noise["window_end_index"]], 0.5),
                               color="gray", ls=":", lw=1.5,
                               label="Stage I / II: first noisy sample fitted" if row == 1 else None)
    axes[0, col].legend(fontsize=7, loc="upper left")
    axes[1, col].legend(fontsize=7, loc="center right")
  fig.suptitle(f"Two-layer ReLU CNN, n = {s.n}, d = {s.d}, m = {s.m}, n·SNR² = {s.n_snr2}, "
               f"η = {s.eta} (time unit nm/(ησ²d) = {time_unit:g} iterations)", fontsize=10)
  run.savefig(fig, "fig1_dynamics.png")


def _plot_selection(run, a):
  if a["t1_index"] is None:
    return
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
  for ax, index, title in ((axes[0], a["t1_index"], f"at T₁ = {a['steps'][a['t1_index']]}"),
                           (axes[1], -1, f"at the end, t = {a['steps'][-1]}")):
    losses_N = np.clip(a["losses"][index], 1e-12, None)
    bins = np.geomspace(min(losses_N.min(), fl.LOG2) / 1.2, max(losses_N.max(), fl.LOG2) * 1.2, 40)
    ax.hist(losses_N[~a["is_noisy"]], bins=bins, color="tab:blue", alpha=0.7, label="clean")
    ax.hist(losses_N[a["is_noisy"]], bins=bins, color="tab:red", alpha=0.7, label="noisy")
    ax.axvline(fl.LOG2, color="k", ls="--", label="log 2")
    ax.set_xscale("log")
    ax.set_xlabel("training loss")
    ax.set_title(title)
    ax.legend(fontsize=8)
  run.savefig(fig, "sample_selection.png")


def _plot_sweep(run, sweep, sweep_d, s, config):
  fig, axes = plt.subplots(1, 4, figsize=(20, 4))
  values = np.array([v["n_snr2"] for v in sweep])
  mean_finite = lambda xs: (float(np.mean([x for x in xs if x is not None and np.isfinite(x)]))
                            if any(x is not None and np.isfinite(x) for x in xs) else np.nan)
  axes[3].plot(values, [mean_finite(v["window_end_time_units"]) for v in sweep], "o-",
               label="end of Stage I (first noisy sample fitted)")
  axes[3].plot(values, [mean_finite(v["all_noisy_fitted_time_units"]) for v in sweep], "s-",
               label="every noisy sample fitted")
  axes[3].set_xscale("log")
  axes[3].set_yscale("log")
  axes[3].set_xlabel("n·SNR²")
  axes[3].set_ylabel("iterations / (nm/(ησ²d))")
  axes[3].axvspan(*config.sweep.theta_band, color="gray", alpha=0.15)
  axes[3].legend(fontsize=8)
  axes[0].plot(values, [v["frac_window"] for v in sweep], "o-", label="seeds with a Stage I window")
  axes[0].plot(values, [v["noisy_memorized_end"] for v in sweep], "s-",
               label="noisy samples memorized at the end")
  axes[0].set_ylabel("fraction")
  axes[1].plot(values, [v["test_error_t1"] for v in sweep], "o-", label="at T₁")
  axes[1].plot(values, [v["test_error_end"] for v in sweep], "s-", label="at the end")
  axes[1].axhline(0.5 * min(s.tau_pos, s.tau_neg), color="k", ls=":", label="0.5·min(τ₊, τ₋)")
  axes[1].set_ylabel("test error (clean labels)")
  for ax in axes[:2]:
    ax.set_xscale("log")
    ax.set_xlabel("n·SNR²")
    ax.axvspan(*config.sweep.theta_band, color="gray", alpha=0.15)
    ax.legend(fontsize=8)
  ratios = [v["d_over_n"] for v in sweep_d]
  axes[2].set_xscale("log")
  axes[2].set_xticks(ratios, [f"{v:g}" for v in ratios])
  axes[2].minorticks_off()
  axes[2].plot(ratios, [v["test_error_t1"] for v in sweep_d], "o-", label="at T₁")
  axes[2].plot(ratios, [v["test_error_end"] for v in sweep_d], "s-", label="at the end")
  axes[2].axhline(0.5 * min(s.tau_pos, s.tau_neg), color="k", ls=":", label="0.5·min(τ₊, τ₋)")
  axes[2].set_xlabel(f"d / n  (n = {s.n}, n·SNR² = {s.n_snr2})")
  axes[2].set_ylabel("test error (clean labels)")
  axes[2].legend(fontsize=8)
  fig.suptitle(f"mean over {config.sweep.seeds} seeds, T = {config.sweep.steps}; "
               "shaded: the Θ(1) band", fontsize=10)
  run.savefig(fig, "sweep_nsnr2.png")


def _first_step(a, key, time_unit):
  """First recorded iteration (in units of nm/(ησ²d)) with accuracy 1 on `key`, or inf."""
  hit = np.flatnonzero(a[key] == 1.0)
  return float(a["steps"][hit[0]] / time_unit) if hit.size else float("inf")


def _summarize(analyses, value_key, value, time_unit):
  t1 = [a for a in analyses if a["t1_index"] is not None]
  test_t1 = [a["test_error"][a["t1_index"]] for a in t1]
  return {value_key: value,
          "frac_window": float(np.mean([a["window"] is not None for a in analyses])),
          "frac_t1": len(t1) / len(analyses),
          "noisy_memorized_end": float(np.mean([a["acc_noisy"][-1] for a in analyses])),
          "test_error_t1": float(np.mean(test_t1)) if test_t1 else float("nan"),
          "test_error_min": float(np.mean([a["test_error"].min() for a in analyses])),
          "test_error_end": float(np.mean([a["test_error"][-1] for a in analyses])),
          "rise": (float(np.mean([a["test_error"][-1] - a["test_error"][a["t1_index"]]
                                  for a in t1])) if t1 else float("nan")),
          # When every noisy sample is fitted (memorization complete), per seed.
          "all_noisy_fitted_time_units": [_first_step(a, "acc_noisy", time_unit)
                                          for a in analyses],
          "window_end_time_units": [
              None if a["window_end_index"] is None
              else float(a["steps"][a["window_end_index"]] / time_unit) for a in analyses]}


# ----------------------------------------------------------------------------- real data

def _check_real(r):
  check_choice("real.data.name", r.data.name, data_lib.DATASETS)
  check_choice("real.model.name", r.model.name, REAL_MODELS)
  check_choice("real.noise.kind", r.noise.kind, noise.NOISE_TYPES)
  check_choice("real.optim.name", r.optim.name, ("sgd", "momentum", "adam"))
  if not 0 <= r.noise.rate < 0.5:
    raise ConfigError("real.noise.rate", r.noise.rate, reason="must lie in [0, 0.5)")
  if r.data.classes is None or len(r.data.classes) != 2:
    raise ConfigError("real.data.classes", r.data.classes, reason="must name two classes")


def _load_real(r):
  train_set = data_lib.load(r.data.name, "train", data_dir=r.data.data_dir,
                            classes=tuple(r.data.classes), limit=r.data.limit)
  test_set = data_lib.load(r.data.name, "test", data_dir=r.data.data_dir,
                           classes=tuple(r.data.classes))
  return train_set, test_set


def _run_real(key, r, run, train_set, test_set):
  key_noise, key_init, key_fit = jax.random.split(key, 3)
  noisy = noise.corrupt(key_noise, train_set.y, 2, r.noise.kind, r.noise.rate)
  run.save_noise(noisy)
  if r.model.name in fl.VGG_CONFIGS:
    model = fl.VGG(r.model.name, 2)
  else:
    model = models.get_model(r.model.name, 2)
  batch = r.optim.batch_size or len(train_set.y)
  tx = train.make_optimizer(r.optim, len(train_set.y) // batch)
  state = train.create_state(model, key_init, train_set.x[:1], tx)
  loss_fn = losses.make_loss(r.loss.name, 2)
  data = train.Data(train_set.x, noisy, test_set.x, test_set.y)
  _, history = train.fit(r.optim, run, state, loss_fn, data, key=key_fit)
  return noisy, history


def _real_summary(history, r):
  history = [h for h in history if h["epoch"] > 0]  # the record before training is chance
  epochs = np.array([h["epoch"] for h in history])
  clean = 1 - np.array([h["clean_error"] for h in history])
  memorized = 1 - np.array([h["noisy_error"] for h in history])
  test = 1 - np.array([h["test_error"] for h in history])
  first = lambda ok: float(epochs[np.argmax(ok)]) if ok.any() else float("inf")
  fit_epoch = first(clean >= r.fit_threshold)
  memorize_epoch = first(memorized >= r.memorize_threshold)
  at_fit = int(np.argmax(clean >= r.fit_threshold)) if np.isfinite(fit_epoch) else -1
  return epochs, clean, memorized, test, {
      "clean_fitted_epoch": fit_epoch, "flipped_memorized_epoch": memorize_epoch,
      "flipped_acc_when_clean_fitted": memorized[at_fit] if at_fit >= 0 else None,
      "final": {"clean_acc": clean[-1], "flipped_acc_vs_noisy": memorized[-1],
                "test_acc": test[-1]},
      "best_test_acc": float(test.max()), "best_test_epoch": float(epochs[np.argmax(test)])}


def _plot_real(run, epochs, clean, memorized, test, r, noisy):
  fig, ax = plt.subplots(figsize=(6.5, 4))
  ax.plot(epochs, clean, "tab:blue", label="train acc, clean samples")
  ax.plot(epochs, memorized, "tab:red", label="train acc, flipped samples vs flipped labels")
  ax.plot(epochs, test, "k", label="test acc (clean)")
  ax.set_xlabel("epoch")
  ax.set_ylabel("accuracy")
  ax.set_ylim(-0.02, 1.02)
  ax.legend(fontsize=8)
  ax.set_title(f"{r.data.name} classes {tuple(r.data.classes)}, {r.model.name}, "
               f"{noisy.is_noisy.sum()} of {noisy.is_noisy.size} labels flipped", fontsize=9)
  run.savefig(fig, "real_data.png")


# ----------------------------------------------------------------------------- run

def run(config, run: experiment.Run) -> list[Claim]:
  s = config.synthetic
  _check_synthetic(s)
  _check_real(config.real)
  key_main, key_sweep, key_real = jax.random.split(jax.random.key(config.seed), 3)
  time_unit = s.n * s.m / (s.eta * s.sigma_xi ** 2 * s.d)
  regime = {"snr": fl.snr(_mu_norm(s, s.n_snr2), s.sigma_xi, s.d),
            "n_snr2": fl.n_snr2(s.n, _mu_norm(s, s.n_snr2), s.sigma_xi, s.d),
            "mu_norm": _mu_norm(s, s.n_snr2), "xi_norm": s.sigma_xi * math.sqrt(s.d),
            "time_unit": time_unit}

  real_data = _load_real(config.real) if config.real.enabled else None  # fail fast if missing
  started = time.time()
  # Same key: identical μ, ξ, true labels and initializations; only the flips differ.
  _, problem, noisy_runs = _run_synthetic(key_main, s, n_snr2=s.n_snr2,
                                          tau=(s.tau_pos, s.tau_neg))
  _, _, clean_runs = _run_synthetic(key_main, s, n_snr2=s.n_snr2, tau=(0.0, 0.0))
  stats = [_t1_stats(a, time_unit) for a in noisy_runs]
  realized_tau = [float(np.asarray(problem.is_noisy_SxN[k]).mean()) for k in range(s.seeds)]
  _plot_dynamics(run, noisy_runs[0], clean_runs[0], s, time_unit)
  _plot_selection(run, noisy_runs[0])
  main_seconds = time.time() - started

  sweep = []
  for value in config.sweep.n_snr2:
    _, _, runs = _run_synthetic(key_sweep, s, n_snr2=value, tau=(s.tau_pos, s.tau_neg),
                                steps=config.sweep.steps, records=config.sweep.records,
                                seeds=config.sweep.seeds)
    summary = _summarize(runs, "n_snr2", value, time_unit)
    summary["t1_in_time_units"] = [_t1_stats(a, time_unit).get("t1_in_time_units")
                                   for a in runs]
    sweep.append(summary)
  sweep_d = []
  for ratio in config.sweep.d_over_n:
    d = int(ratio * s.n)
    if d < s.n + 1:
      raise ConfigError("sweep.d_over_n", ratio, reason="needs d >= n + 1")
    _, _, runs = _run_synthetic(key_sweep, s, n_snr2=s.n_snr2, tau=(s.tau_pos, s.tau_neg), d=d,
                                steps=config.sweep.steps, records=config.sweep.records,
                                seeds=config.sweep.seeds)
    sweep_d.append(_summarize(runs, "d_over_n", ratio, time_unit * s.d / d))
  _plot_sweep(run, sweep, sweep_d, s, config)
  sweep_seconds = time.time() - started - main_seconds

  results = {
      "regime": regime, "realized_tau": realized_tau, "stats": stats,
      "noiseless": [{"test_error_end": a["test_error"][-1],
                     "min_true_acc_after_fit": _noiseless_acc(a)} for a in clean_runs],
      "sweep": sweep, "sweep_d_over_n": sweep_d,
      "seconds": {"main": main_seconds, "sweeps": sweep_seconds}}
  run.save_json("results", results)

  real = None
  if real_data is not None:
    noisy, history = _run_real(key_real, config.real, run, *real_data)
    epochs, clean_acc, memorized, test_acc, real = _real_summary(history, config.real)
    _plot_real(run, epochs, clean_acc, memorized, test_acc, config.real, noisy)
    results["real"] = real
    results["seconds"]["real"] = time.time() - started - main_seconds - sweep_seconds
    run.save_json("results", results)
  return _claims(config, regime, stats, realized_tau, clean_runs, sweep, real)


def _noiseless_acc(a):
  """Lowest training accuracy from the first iteration with every sample fitted on."""
  fitted = np.flatnonzero(a["acc_train"] == 1.0)
  return float(a["acc_train"][fitted[0]:].min()) if fitted.size else 0.0


def _claims(config, regime, stats, realized_tau, clean_runs, sweep, real):
  s = config.synthetic
  floor = 0.5 * min(s.tau_pos, s.tau_neg)
  all_windows = all(st["window"] is not None for st in stats)
  all_t1 = all("t1" in st for st in stats)
  setup = (f"n={s.n}, d={s.d}, m={s.m}, n·SNR²={regime['n_snr2']:.3g}, "
           f"{len(stats)} seeds (realized τ {', '.join(f'{t:.2f}' for t in realized_tau)})")
  claims = [Claim(
      id="stage1_fit", paper=PAPER,
      statement="Thm 4.1: in Stage I every clean sample is fitted and every noisy sample is "
                f"classified by its true label ({setup})",
      expected="a window of iterations with all training predictions equal to the true "
               "labels, in every seed",
      measured={"windows": [st["window"] for st in stats]},
      passed=all_windows)]
  claims.append(Claim(
      id="stage1_signal_over_noise", paper=PAPER,
      statement="Thm 4.1: at T₁ = Θ(nm/(ησ²d)), inside that window, the signal coefficient "
                "exceeds the noisy samples' memorization: max_{j,r} γ > max_{i noisy, r} ρ̄_{ỹ_i,r,i}",
      expected="such an iteration T₁ in every seed, at a Θ(1) multiple of nm/(ησ²d)",
      measured={"t1": [st.get("t1") for st in stats],
                "t1_in_time_units": [st.get("t1_in_time_units") for st in stats],
                "gamma_max_at_t1": [st.get("at_t1", {}).get("gamma_max") for st in stats],
                "rho_bar_max_noisy_at_t1": [st.get("at_t1", {}).get("rho_bar_max_noisy")
                                            for st in stats],
                "fraction_of_window_with_gamma_above": [
                    st.get("signal_wins_fraction_of_window") for st in stats],
                "at_window_end": [st.get("at_window_end") for st in stats]},
      passed=all_t1))
  final = [st["final"] for st in stats]
  gamma_pos = [st.get("gamma_min_after_t1", float("-inf")) for st in stats]
  claims.append(Claim(
      id="stage2_memorization", paper=PAPER,
      statement="Thm 4.2: in Stage II the noisy samples get fitted, clean ones stay fitted, "
                "some ρ̄ exceeds γ, and γ stays positive",
      expected="at the end: accuracy 1 on clean and on noisy samples (vs noisy labels), a "
               "positive fraction of noisy samples with max_r ρ̄ > max_r γ_{y_i,r}; "
               "min_{j,r} γ_{j,r} > 0 at every iteration after T₁",
      measured={"acc_clean_end": [f["acc_clean"] for f in final],
                "acc_noisy_end": [f["acc_noisy"] for f in final],
                "frac_noisy_rho_over_gamma": [f["frac_noisy_rho_over_gamma"] for f in final],
                "min_gamma_after_t1": gamma_pos},
      passed=all_t1 and all(f["acc_clean"] == 1 and f["acc_noisy"] == 1
                                 and f["frac_noisy_rho_over_gamma"] > 0 for f in final)
      and min(gamma_pos) > 0))
  test_end = [f["test_error"] for f in final]
  claims.append(Claim(
      id="stage2_test_error", paper=PAPER,
      statement="Thm 4.2: after the loss converges the test error (clean test labels) is at "
                "least 0.5·min(τ₊, τ₋)",
      expected=f"test error at T = {s.steps} >= {floor:g} in every seed",
      measured={"test_error_end": test_end, "d_over_n": s.d / s.n},
      passed=min(test_end) >= floor))
  sel_t1 = [st.get("at_t1", {}) for st in stats]
  claims.append(Claim(
      id="sample_selection_log2", paper=PAPER,
      statement="Prop 4.3: at T₁ every clean sample has loss <= log 2 and every noisy sample "
                "loss >= log 2 (the threshold separates them); after convergence it does not",
      expected="fractions 1 and 1 at T₁ in every seed",
      measured={"at_t1": [{k: v.get(k) for k in ("clean_below_log2", "noisy_above_log2")}
                          for v in sel_t1],
                "at_end": [{k: f[k] for k in ("clean_below_log2", "noisy_above_log2")}
                           for f in final]},
      passed=all_t1 and all(v["clean_below_log2"] == 1 and v["noisy_above_log2"] == 1
                                 for v in sel_t1)))
  test_t1 = [v.get("test_error", float("inf")) for v in sel_t1]
  claims.append(Claim(
      id="early_stopping", paper=PAPER,
      statement="Prop 4.3: stopping at T₁ gives a small test error, no larger than after "
                "convergence",
      expected="test error at T₁ <= 0.01 and <= the test error at the end, every seed",
      measured={"test_error_t1": test_t1, "test_error_end": test_end},
      passed=all(a <= 0.01 and a <= b for a, b in zip(test_t1, test_end))))
  noiseless_acc = [_noiseless_acc(a) for a in clean_runs]
  noiseless_test = [a["test_error"][-1] for a in clean_runs]
  claims.append(Claim(
      id="noiseless", paper=PAPER,
      statement="Thm 4.4: without label noise every sample stays correctly classified and "
                "the test error stays small",
      expected="training accuracy 1 from the first fit to the end, test error <= 0.01 at the end",
      measured={"min_train_acc_after_fit": noiseless_acc, "test_error_end": noiseless_test},
      passed=min(noiseless_acc) == 1 and max(noiseless_test) <= 0.01))
  small = [v for v in sweep if v["n_snr2"] <= config.sweep.small]
  band = [v for v in sweep if config.sweep.theta_band[0] <= v["n_snr2"] <= config.sweep.theta_band[1]]
  claims.append(Claim(
      id="sweep_two_stages", paper=PAPER,
      statement="Two stages (a Stage I window, then memorization of the noisy samples) appear "
                "in the n·SNR² = Θ(1) regime and not when noise dominates (n·SNR² ≪ 1)",
      expected=f"window in every seed and all noisy samples memorized for n·SNR² in "
               f"{tuple(config.sweep.theta_band)}; no window for n·SNR² <= {config.sweep.small}",
      measured={f"{v['n_snr2']:g}": {"frac_window": v["frac_window"],
                                     "noisy_memorized_end": v["noisy_memorized_end"]}
                for v in sweep},
      passed=bool(small) and bool(band) and all(v["frac_window"] == 0 for v in small)
      and all(v["frac_window"] == 1 and v["noisy_memorized_end"] == 1 for v in band)))
  large = [v for v in sweep if v["n_snr2"] >= config.sweep.large]
  claims.append(Claim(
      id="sweep_kou_contrast", paper=PAPER,
      statement="Memorization harms the test error in the Θ(1) regime but not when the signal "
                "dominates (n·SNR² ≫ 1, Kou et al. 2023: benign overfitting)",
      expected=f"test error rise from T₁ to the end >= {floor:g} in the Θ(1) band and "
               f"<= 0.01 for n·SNR² >= {config.sweep.large}",
      measured={f"{v['n_snr2']:g}": {"rise": v["rise"], "test_error_t1": v["test_error_t1"],
                                     "test_error_end": v["test_error_end"]} for v in sweep},
      passed=bool(band) and bool(large) and all(v["rise"] >= floor for v in band)
      and all(v["rise"] <= 0.01 for v in large)))
  r = config.real
  if real is None:
    return claims
  claims.append(Claim(
      id="real_memorized_later", paper=PAPER,
      statement=f"Real data ({r.data.name} {tuple(r.data.classes)}, {r.model.name}, "
                f"{r.noise.rate:g} of labels flipped): flipped samples are memorized later than "
                "the clean ones are fitted",
      expected=f"first epoch with clean train acc >= {r.fit_threshold} earlier than the first "
               f"with flipped-sample acc (vs flipped labels) >= {r.memorize_threshold}",
      measured=real,
      passed=real["clean_fitted_epoch"] < real["flipped_memorized_epoch"]))
  return claims


if __name__ == "__main__":
  experiment.main("feature_learning", get_config, run)
