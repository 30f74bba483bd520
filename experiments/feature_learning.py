"""Label noise in the feature-learning process (Han et al., ICML 2025): Fig. 1, n·SNR² sweep,
early stopping and sample selection, and the real-data check.

Synthetic (paper §3): a two-layer ReLU patch CNN f = F₊₁ − F₋₁ (first layer trained, second
fixed at ±1/m) on x = [y·μ, ξ] with class-conditional label flips τ₊, τ₋, trained by
full-batch GD on the logistic loss in one jitted lax.scan, vmapped over seeds
(`noisejax.theory.feature_learning`). The exact decomposition
w⁽ᵗ⁾ − w⁽⁰⁾ = j·γ‖μ‖⁻²μ + Σ_i ρ_i‖ξ_i‖⁻²ξ_i is solved at every recorded iteration.
Parts (`config.parts`):
  real      two classes of MNIST (quick) or CIFAR-10 airplane/automobile with VGG-16
            (paper), exactly ⌊0.2·N⌋ labels flipped, per-epoch accuracy on clean samples,
            on flipped samples against their noisy labels, and clean test accuracy. It runs
            first, so a missing data set fails at once, before the synthetic parts.
  dynamics  Fig. 1: max γ, max ρ on clean and noisy samples, training accuracy (overall,
            clean, noisy against the noisy labels), test error and every sample's loss with
            the log 2 line, with label noise and without; T₁ and the Stage I / II boundary
            dashed. The log 2 sample selection at T₁ and at the end.
  sweep     n·SNR² from ≪ 1 to ≫ 1 and d/n at the chosen n·SNR², each vmapped over seeds.

Command: python -m experiments.feature_learning --preset quick   (≈1.5–3 min on 2 CPU cores)
         python -m experiments.feature_learning --preset tiny    (seconds)
Expect:  a Stage I window in every seed (clean samples fitted, noisy ones predicted as their
         true class, max γ above max ρ̄ of the noisy samples), then every noisy sample
         memorized while γ stays positive; the log 2 loss threshold separates clean from
         noisy samples at T₁; no window for n·SNR² ≪ 1; on MNIST the flipped samples are
         memorized epochs after the clean ones are fitted. The test error after
         convergence stays small at d = 20n (benign, see the README), so the claimed rise
         to ≥ 0.5·min(τ₊, τ₋) (dynamics/stage2_test_error, sweep/kou_contrast) is not
         expected at this d/n.
"""

import math

import jax
import ml_collections
import numpy as np

from experiments import feature_learning_figures as figures
from noisejax import claims, config as cfg, data, experiment, noise, train
from noisejax.errors import ConfigError
from noisejax.theory import feature_learning as fl

PAPER = "feature-learning"
SMALL_TEST_ERROR = 0.01  # "small" test error (Prop. 4.3, Thm 4.4, Kou et al.'s benign regime)


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

  tiny: n = 16, d = 160, m = 4, η = 0.05, 300 iterations, 2 seeds, sweeps over n·SNR² in
  {0.1, 6, 100} and d/n = 10 (the main runs' shapes: one compilation); real data on 300
  images for 2 epochs.
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.parts = ("real", "dynamics", "sweep")  # real first: missing data fail at once
  c.synthetic = ml_collections.ConfigDict(dict(
      n=100, d=2000, m=10, sigma0=0.001, sigma_xi=1.0, n_snr2=6.0, tau_pos=0.2, tau_neg=0.2,
      eta=0.02, steps=20000, records=200, seeds=5, n_test=1000))
  c.sweep = ml_collections.ConfigDict(dict(
      n_snr2=(0.1, 0.3, 1.0, 3.0, 6.0, 10.0, 30.0, 100.0),
      small=0.3,          # n·SNR² at or below this counts as ≪ 1
      theta_band=(6.0, 10.0),  # Θ(1) values where two stages are claimed
      large=100.0,        # n·SNR² at or above this counts as ≫ 1 (signal dominates)
      d_over_n=(1.5, 2, 5, 20),
      steps=3000, records=80, seeds=3))
  c.real = cfg.training(
      cfg.model("lenet5"), cfg.loss("cross_entropy"),
      cfg.optim("adam", lr=1.2e-3, batch_size=60, epochs=60, checkpoint_every=20))
  c.real.data = cfg.data("mnist5k", classes=(0, 1))
  c.real.noise = cfg.noise("symmetric_total", 0.2)
  c.real.fit_threshold = 0.9        # a subset counts as fitted at this accuracy on its labels
  c.real.memorize_threshold = 0.5   # flipped samples count as memorized at this accuracy
  if preset == "paper":
    c.synthetic.update(dict(n=200, d=4000, m=20, steps=30000, records=300, seeds=5,
                            n_test=2000))
    c.sweep.update(dict(n_snr2=(0.03, 0.1, 0.3, 1.0, 2.0, 3.0, 4.5, 6.0, 10.0, 30.0, 100.0,
                                300.0),
                        d_over_n=(1.5, 2, 3, 5, 10, 20, 40), steps=10000, records=120, seeds=5))
    c.real.data.name = "cifar10"
    c.real.model = cfg.model("vgg16")
  elif preset == "tiny":
    c.synthetic.update(dict(n=16, d=160, m=4, steps=300, records=30, seeds=2, n_test=200,
                            eta=0.05))
    c.sweep.update(dict(n_snr2=(0.1, 6.0, 100.0), d_over_n=(10,), steps=300, records=30,
                        seeds=2))
    c.real.data.limit = 300
    c.real.optim.update(dict(batch_size=50, epochs=2, checkpoint_every=2))
  return c


def validate(config):
  """What the shared validation does not know: the theory's conditions on the sizes."""
  s, sw = config.synthetic, config.sweep
  for path, node, fields in (("synthetic", s, ("n", "d", "m", "steps", "records", "seeds",
                                                "n_test")),
                             ("sweep", sw, ("steps", "records", "seeds"))):
    for field in fields:
      if int(node[field]) < 1:
        raise ConfigError(f"{path}.{field}", node[field], reason="must be a positive integer")
  if s.n + 1 > s.d:
    raise ConfigError("synthetic.d", s.d, reason=f"needs d >= n + 1 = {s.n + 1} for the exact "
                      "decomposition over span{μ, ξ_1..ξ_n}")
  for ratio in sw.d_over_n:
    if int(ratio * s.n) < s.n + 1:
      raise ConfigError("sweep.d_over_n", ratio, reason=f"needs d = ratio·n >= n + 1 = {s.n + 1}")
  for field in ("tau_pos", "tau_neg"):
    if not 0 <= s[field] < 0.5:
      raise ConfigError(f"synthetic.{field}", s[field], reason="must lie in [0, 0.5)")
  for field in ("eta", "sigma_xi", "n_snr2"):
    if not s[field] > 0:
      raise ConfigError(f"synthetic.{field}", s[field], reason="must be > 0")
  if not all(v > 0 for v in sw.n_snr2):
    raise ConfigError("sweep.n_snr2", sw.n_snr2, reason="must all be > 0")
  r = config.real
  if not r.noise.rate < 0.5:
    raise ConfigError("real.noise.rate", r.noise.rate, reason="must lie in [0, 0.5)")
  if r.data.classes is None or len(r.data.classes) != 2:
    raise ConfigError("real.data.classes", r.data.classes, reason="must name two classes")


def _time_unit(s, d=None):
  return fl.time_unit(s.n, s.m, s.eta, s.sigma_xi, s.d if d is None else d)


# ----------------------------------------------------------------------------- real data

def compute_real(config, run) -> dict:
  r = config.real
  train_set, test_set = data.load_splits(r.data)
  key_noise, key_train = jax.random.split(run.key)
  noisy = noise.corrupt(key_noise, train_set.y, 2, r.noise.kind, r.noise.rate)
  run.save_noise(noisy)
  splits = train.Splits(train_set.x, noisy, test_set.x, test_set.y)
  result = run.train_classifier(r, splits, key=key_train)
  return {"history": result.history, "flipped": int(noisy.is_noisy.sum()),
          "n_train": int(noisy.is_noisy.size)}


def judge_real(record, config) -> list:
  r = config.real
  summary = fl.memorization_epochs(record["history"], fit_threshold=r.fit_threshold,
                                   memorize_threshold=r.memorize_threshold)
  return [claims.claim(
      "memorized_later", PAPER,
      f"Real data ({r.data.name} {tuple(r.data.classes)}, {r.model.name}, {r.noise.rate:g} of "
      "labels flipped): flipped samples are memorized later than the clean ones are fitted",
      [claims.condition(f"first epoch with clean train acc ≥ {r.fit_threshold:g} earlier than "
                        "the first with flipped-sample acc (vs flipped labels) ≥ "
                        f"{r.memorize_threshold:g}",
                        summary["clean_fitted_epoch"] < summary["flipped_memorized_epoch"])],
      summary)]


# ----------------------------------------------------------------------------- dynamics

def compute_dynamics(config, run) -> dict:
  s = config.synthetic
  # One key: identical μ, ξ, true labels and initializations; only the flips differ.
  problem, noisy_runs = fl.run_seeds(run.key, **s)
  _, clean_runs = fl.run_seeds(run.key, **dict(s, tau_pos=0.0, tau_neg=0.0))
  unit, mu_norm = _time_unit(s), fl.signal_norm(s.n_snr2, s.n, s.d, s.sigma_xi)
  return {
      "regime": {"snr": fl.snr(mu_norm, s.sigma_xi, s.d),
                 "n_snr2": fl.n_snr2(s.n, mu_norm, s.sigma_xi, s.d), "mu_norm": mu_norm,
                 "xi_norm": s.sigma_xi * math.sqrt(s.d), "time_unit": unit},
      "realized_tau": np.asarray(problem.is_noisy_SxN).mean(axis=1).tolist(),
      "stats": [fl.summarize_run(a, unit) for a in noisy_runs],
      "noiseless": [{"test_error_end": a["test_error"][-1],
                     "min_train_acc_after_fit": fl.min_accuracy_after_fit(a)}
                    for a in clean_runs],
      "seed0": {"noisy": noisy_runs[0], "clean": clean_runs[0]}}  # for the figures


def judge_dynamics(record, config) -> list:
  s, stats, regime = config.synthetic, record["stats"], record["regime"]
  floor = 0.5 * min(s.tau_pos, s.tau_neg)
  final, at_t1 = [st["final"] for st in stats], [st.get("at_t1", {}) for st in stats]
  setup = (f"n={s.n}, d={s.d}, m={s.m}, n·SNR²={regime['n_snr2']:.3g}, {len(stats)} seeds "
           f"(realized τ {', '.join(f'{t:.2f}' for t in record['realized_tau'])})")
  test_t1 = [v.get("test_error", float("inf")) for v in at_t1]
  test_end = [f["test_error"] for f in final]
  noiseless = record["noiseless"]
  every = claims.check_every_seed
  return [
      claims.claim(
          "stage1_fit", PAPER,
          "Thm 4.1: in Stage I every clean sample is fitted and every noisy sample is "
          f"classified by its true label ({setup})",
          [claims.condition("a window of iterations with all training predictions equal to "
                            f"the true labels, in each of {len(stats)} seeds",
                            all(st["window"] is not None for st in stats))],
          {"windows": [st["window"] for st in stats]}),
      claims.claim(
          "stage1_signal_over_noise", PAPER,
          "Thm 4.1: at T₁ = Θ(nm/(ησ²d)), inside that window, the signal coefficient exceeds "
          "the noisy samples' memorization: max_{j,r} γ > max_{i noisy, r} ρ̄_{ỹ_i,r,i}",
          [claims.condition(f"such an iteration T₁ in each of {len(stats)} seeds, at a Θ(1) "
                            "multiple of nm/(ησ²d)", all("t1" in st for st in stats))],
          {"t1": [st.get("t1") for st in stats],
           "t1_in_time_units": [st.get("t1_in_time_units") for st in stats],
           "gamma_max_at_t1": [v.get("gamma_max") for v in at_t1],
           "rho_bar_max_noisy_at_t1": [v.get("rho_bar_max_noisy") for v in at_t1],
           "fraction_of_window_with_gamma_above": [st.get("signal_wins_fraction_of_window")
                                                   for st in stats],
           "at_window_end": [st.get("at_window_end") for st in stats]}),
      claims.claim(
          "stage2_memorization", PAPER,
          "Thm 4.2: in Stage II the noisy samples get fitted, clean ones stay fitted, some ρ̄ "
          "exceeds γ, and γ stays positive",
          [every("final accuracy on clean samples", [f["acc_clean"] for f in final], "==", 1),
           every("final accuracy on noisy samples (vs noisy labels)",
                 [f["acc_noisy"] for f in final], "==", 1),
           every("final fraction of noisy samples with max_r ρ̄ > max_r γ_{y_i,r}",
                 [f["frac_noisy_rho_over_gamma"] for f in final], ">", 0),
           every("min_{j,r} γ_{j,r} over the iterations after T₁",
                 [st.get("gamma_min_after_t1") for st in stats], ">", 0)],
          {"acc_clean_end": [f["acc_clean"] for f in final],
           "acc_noisy_end": [f["acc_noisy"] for f in final],
           "frac_noisy_rho_over_gamma": [f["frac_noisy_rho_over_gamma"] for f in final],
           "min_gamma_after_t1": [st.get("gamma_min_after_t1", float("-inf")) for st in stats]}),
      claims.claim(
          "stage2_test_error", PAPER,
          "Thm 4.2: after the loss converges the test error (clean test labels) is at least "
          "0.5·min(τ₊, τ₋)",
          [every(f"test error at T = {s.steps}", test_end, ">=", floor, "0.5·min(τ₊, τ₋) =")],
          {"test_error_end": test_end, "d_over_n": s.d / s.n}),
      claims.claim(
          "sample_selection_log2", PAPER,
          "Prop 4.3: at T₁ every clean sample has loss <= log 2 and every noisy sample loss "
          ">= log 2 (the threshold separates them); after convergence it does not",
          [every("fraction of clean samples with loss ≤ log 2 at T₁",
                 [v.get("clean_below_log2") for v in at_t1], "==", 1),
           every("fraction of noisy samples with loss ≥ log 2 at T₁",
                 [v.get("noisy_above_log2") for v in at_t1], "==", 1)],
          {"at_t1": [{k: v.get(k) for k in ("clean_below_log2", "noisy_above_log2")}
                     for v in at_t1],
           "at_end": [{k: f[k] for k in ("clean_below_log2", "noisy_above_log2")}
                      for f in final]}),
      claims.claim(
          "early_stopping", PAPER,
          "Prop 4.3: stopping at T₁ gives a small test error, no larger than after convergence",
          [every("test error at T₁", test_t1, "<=", SMALL_TEST_ERROR),
           claims.condition(f"test error at T₁ ≤ the test error at the end, in each of "
                            f"{len(test_t1)} seeds",
                            all(a <= b for a, b in zip(test_t1, test_end)))],
          {"test_error_t1": test_t1, "test_error_end": test_end}),
      claims.claim(
          "noiseless", PAPER,
          "Thm 4.4: without label noise every sample stays correctly classified and the test "
          "error stays small",
          [every("lowest training accuracy from the first fit to the end",
                 [v["min_train_acc_after_fit"] for v in noiseless], "==", 1),
           every("test error at the end", [v["test_error_end"] for v in noiseless], "<=",
                 SMALL_TEST_ERROR)],
          {"min_train_acc_after_fit": [v["min_train_acc_after_fit"] for v in noiseless],
           "test_error_end": [v["test_error_end"] for v in noiseless]}),
  ]


# ----------------------------------------------------------------------------- sweep

def compute_sweep(config, run) -> dict:
  s, sw = config.synthetic, config.sweep
  args = dict(s, steps=sw.steps, records=sw.records, seeds=sw.seeds)
  # One key for every sweep point: the same draws, only n·SNR² (or d) changes.
  by_snr = [{"n_snr2": value,
             **fl.summarize_seeds(fl.run_seeds(run.key, **dict(args, n_snr2=value))[1],
                                  _time_unit(s))}
            for value in sw.n_snr2]
  by_d = []
  for ratio in sw.d_over_n:
    d = int(ratio * s.n)
    _, runs = fl.run_seeds(run.key, **dict(args, d=d))
    by_d.append({"d_over_n": ratio, **fl.summarize_seeds(runs, _time_unit(s, d))})
  return {"n_snr2": by_snr, "d_over_n": by_d}


def _for_all(quantity, values, op, bound, where, bound_name=""):
  """`quantity op bound` at every sweep point in `where` (fails if there is none)."""
  text = claims.check(quantity, None, op, bound, bound_name).text + f" for {where}"
  return claims.condition(text, bool(values) and all(
      claims.check(quantity, v, op, bound).passed for v in values))


def judge_sweep(record, config) -> list:
  s, sw, points = config.synthetic, config.sweep, record["n_snr2"]
  floor = 0.5 * min(s.tau_pos, s.tau_neg)
  small = [v for v in points if v["n_snr2"] <= sw.small]
  band = [v for v in points if sw.theta_band[0] <= v["n_snr2"] <= sw.theta_band[1]]
  large = [v for v in points if v["n_snr2"] >= sw.large]
  in_band = f"n·SNR² in [{sw.theta_band[0]:g}, {sw.theta_band[1]:g}]"
  return [
      claims.claim(
          "two_stages", PAPER,
          "Two stages (a Stage I window, then memorization of the noisy samples) appear in "
          f"the n·SNR² = Θ(1) regime and not when noise dominates (n·SNR² ≪ 1; {sw.seeds} seeds "
          "per point)",
          [_for_all("fraction of seeds with a Stage I window", [v["frac_window"] for v in band],
                    "==", 1, in_band),
           _for_all("noisy samples memorized at the end",
                    [v["noisy_memorized_end"] for v in band], "==", 1, in_band),
           _for_all("fraction of seeds with a Stage I window", [v["frac_window"] for v in small],
                    "==", 0, f"n·SNR² ≤ {sw.small:g}")],
          {f"{v['n_snr2']:g}": {"frac_window": v["frac_window"],
                                "noisy_memorized_end": v["noisy_memorized_end"]}
           for v in points}),
      claims.claim(
          "kou_contrast", PAPER,
          "Memorization harms the test error in the Θ(1) regime but not when the signal "
          "dominates (n·SNR² ≫ 1, Kou et al. 2023: benign overfitting)",
          [_for_all("test error rise from T₁ to the end", [v["rise"] for v in band], ">=",
                    floor, in_band, "0.5·min(τ₊, τ₋) ="),
           _for_all("test error rise from T₁ to the end", [v["rise"] for v in large], "<=",
                    SMALL_TEST_ERROR, f"n·SNR² ≥ {sw.large:g}")],
          {f"{v['n_snr2']:g}": {"rise": v["rise"], "test_error_t1": v["test_error_t1"],
                                "test_error_end": v["test_error_end"]} for v in points}),
  ]


PARTS = {
    "real": experiment.Part(compute_real, figures.plot_real, judge_real),
    "dynamics": experiment.Part(compute_dynamics, figures.plot_dynamics, judge_dynamics),
    "sweep": experiment.Part(compute_sweep, figures.plot_sweep, judge_sweep),
}

if __name__ == "__main__":
  experiment.main("feature_learning", get_config, PARTS, validate=validate)
