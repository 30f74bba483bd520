"""The misclassification paper's claims on experiments/misclassification_sparsity.py's
records (Figs. 1, 5, 6, §§6.3–6.5, App. A), judged over paired seeds: seed s gives every
p, loss and method the same data, initialization and data order, so comparisons are the
mean and 95% CI of per-seed differences or ratios (`claims.SeedStats`). "Test error" is the
mean over the last quarter of the evaluations (no early stopping: the paper trains on).
"""

import numpy as np

from noisejax import claims

PAPER = "misclassification"
FINAL = {"active_train": "active_fraction", "active_test": "active_test",  # summary: final
         "digit_associated": "associated", "never_fire": "never_fire"}


def _last_quarter(values_xT):
  """The mean over the last quarter of the evaluations (last axis), once settled."""
  values_xT = np.asarray(values_xT)
  return values_xT[..., -max(1, values_xT.shape[-1] // 4):].mean(-1)


def fig1(record, config) -> list:
  """Over seeds: paired differences and ratios between p = 0 and p > 0, seed by seed."""
  curves = record["curves"]  # P×S×T
  te, mins = _last_quarter(curves["test_error"]), curves["train_error"].min(-1)
  p0, p1 = f"p={record['p'][0]:g}", f"p={record['p'][-1]:g}"
  diff = claims.SeedStats.of(te[-1] - te[0])
  ratios = {where: claims.SeedStats.of(_last_quarter(curves[k][-1]) / _last_quarter(curves[k][0]))
            for where, k in (("training", "active_train"), ("test", "active_test"))}
  seeds = f"{diff.n} paired seeds"
  settle = claims.SeedStats.of(_last_quarter(curves["test_error"][-1])
                               - _quarter(curves["test_error"][-1], 3))
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
      claims.claim(
          "fig1_test_error_stabilized", PAPER,
          f"§6.3: both networks train \"until the test error stabilizes\": with {p1} the test "
          f"error no longer falls by a point between the third and the last quarter of the "
          f"{int(record['steps'][-1])} steps ({seeds})",
          [claims.check_ci(f"test error({p1}), last − third quarter", settle, "above", -0.01)],
          settle.measured()),
      *_sparse_net(record["sparse_net"], config),
      *_a_of_p(record["a_of_p"]),
  ]


def _quarter(values_xT, q: int):
  """The mean over quarter q (1..4) of the evaluations after the first (last axis)."""
  values_xT = np.asarray(values_xT)[..., 1:]
  T = values_xT.shape[-1]
  return values_xT[..., (q - 1) * T // 4:max(q * T // 4, (q - 1) * T // 4 + 1)].mean(-1)


def _sparse_net(r, config) -> list:
  """§6.3's hand-built network on every seed's test points."""
  c = config.fig1
  return [claims.claim(
      "sec63_sparse_net", PAPER,
      f"§6.3: the hand-built network (W_1 = (I; −I), B = −(1 − ε/2), W_2 = 1, b = −0.5) "
      f"represents F on D, with dε = {c.d * c.eps:g} active neurons typical for inputs from "
      f"C_1 and none for C_−1 (d = {c.d}, ε = {c.eps:g}; exact expectation of the count on "
      f"C_1: 1 + (d − 1)ε/2 = {r['expected_outer']:.3g})",
      [claims.check("test error of sign N(x), max over seeds", float(np.max(r["error"])),
                    "==", 0),
       claims.check("E A_N(x) on C_−1, max over seeds", float(np.max(r["active_inner"])),
                    "==", 0),
       claims.within("E A_N(x) on C_1, mean over seeds", float(np.mean(r["active_outer"])),
                     c.d * c.eps, 0.2)],
      dict(error=claims.SeedStats.of(r["error"]).measured(),
           active_outer=float(np.mean(r["active_outer"])),
           active_inner=float(np.max(r["active_inner"])), expected_outer=r["expected_outer"]))]


def _a_of_p(r) -> list:
  """App. A: a(p), the typical number of active neurons after a fixed T, on a grid of p."""
  a_P = np.asarray(r["active_train"]).mean(1)
  lo, hi, span = min(a_P[0], a_P[-1]), max(a_P[0], a_P[-1]), abs(a_P[0] - a_P[-1])
  return [claims.claim(
      "appA_a_of_p_continuous", PAPER,
      f"App. A / §1: a(p) (E_x A_N(x) on the training inputs after T = {r['steps']} steps, "
      f"mean over {np.asarray(r['active_train']).shape[1]} seeds) is continuous in p: tuning p "
      f"from {r['p'][0]:g} to {r['p'][-1]:g} tunes the sparsity from a({r['p'][0]:g}) to "
      f"a({r['p'][-1]:g}) through the values in between. p is §3's resampling rate (a "
      "uniform random label: a flip with probability p/2); App. A writes a flip with "
      "probability p, which §3's p = 2p' reproduces",
      [claims.condition("every intermediate a(p) lies between a(p_first) and a(p_last)",
                        all(lo <= v <= hi for v in a_P[1:-1])),
       claims.check("max |a(p_i+1) − a(p_i)| / |a(p_last) − a(p_first)|",
                    float(np.max(np.abs(np.diff(a_P))) / max(span, 1e-12)), "<=", 0.5)],
      dict(p=r["p"], a=a_P.tolist(),
           per_seed=np.asarray(r["active_train"]).tolist()))]


def mnist_per_seed(record) -> dict:
  """Per (loss, p): every seed's final activity and its test error averaged over the last
  quarter of the evaluations, as arrays over seeds."""
  return {name: {**{k: np.asarray([f[v] for f in r["final"]], float) for k, v in FINAL.items()},
                 "test_error_last_quarter": _last_quarter(r["curves"]["test_error"])}
          for name, r in record["runs"].items()}


def mnist(record, config) -> list:
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
  if "label_smoothing_p0" in per_seed and "cross_entropy" in record["losses"]:
    ls = per_seed["label_smoothing_p0"]["active_train"]
    vs = {q: stats(ls - per_seed[f"cross_entropy_p{q:g}"]["active_train"]) for q in p}
    alpha = config.mnist.smoothing
    out += [
        claims.claim(
            "sec65_label_smoothing_sparsifies", PAPER,
            f"§6.5: on MNIST label smoothing ({alpha:g}, softmax CE, no label noise) has the "
            f"same qualitative sparsifying effect as label noise: sparser than plain "
            f"softmax CE ({seeds})",
            [claims.check_ci("active fraction, LS − CE (p = 0), training inputs", vs[p[0]],
                             "below", 0)],
            vs[p[0]].measured()),
        claims.claim(
            "sec65_label_smoothing_denser_than_noise", PAPER,
            f"§6.5: quantitatively label smoothing ({alpha:g}) gives denser representations "
            f"than label noise (softmax CE with {noisy}; {seeds})",
            [claims.check_ci(f"active fraction, LS − CE ({noisy}), training inputs",
                             vs[p[-1]], "above", 0)],
            vs[p[-1]].measured())]
  return out


def cifar(record, config) -> list:
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
