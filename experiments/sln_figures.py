"""Figures of experiments/sln.py: each a function of one part's record.

  plot_methods    per noise setting N: N_fig1_curves.png (Fig. 1: test accuracy; clean /
                  noisy training loss), N_fig3_confidence.png (Fig. 3: density of p(given
                  label)), N_fig4_dissection.png (Figs. 4 / 9: samples by ascending loss and
                  label / prediction correctness), N_fig6_sigma.png (Fig. 6: accuracy vs σ),
                  N_fig10_label_correction.png (Fig. 10: the two LC weightings);
                  methods_table.png (more_noise: more_noise_table.png; Tables 1–2) and
                  fig8_time.png (Fig. 8: accuracy vs 1 / seconds per epoch).
  plot_sgd_noise  fig5_sgd_noise.png (Fig. 5), fig2_landscapes.png (Fig. 2, one colour
                  scale), appE_noise_energy.png (App. E: noise energy, output and loss
                  sharpness at each solution).
  plot_theory     props.png (Props. 1–3: exact and Monte Carlo errors; Prop. 2's extremes).
"""

import matplotlib
import numpy as np

from noisejax import plots

DATA_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "clothing1m": "Clothing1M"}
METHODS = ("CE", "GCE", "Co-teaching", "PHuber-CE", "LS", "SLN", "SLN-MO", "SLN-MO-LC",
           "LC reversed")
COLORS = {"CE": "black", "GCE": "tab:cyan", "Co-teaching": "tab:brown",
          "PHuber-CE": "tab:pink", "LS": "tab:olive", "SLN": "tab:purple",
          "SLN-MO": "tab:orange", "SLN-MO-LC": "tab:green", "LC reversed": "tab:gray"}
# Fig. 4's four types and colours: (is_noisy, prediction == true label).
TYPES = (((False, True), "label ✓, prediction ✓", "tab:red"),
         ((False, False), "label ✓, prediction ✗", "tab:green"),
         ((True, True), "label ✗, prediction ✓", "tab:orange"),
         ((True, False), "label ✗, prediction ✗", "tab:blue"))
LANDSCAPES = {"CE": "black", "eq1": "tab:blue", "eq2": "tab:orange", "SLN": "tab:purple"}


def _data(config):
  d = config.data
  return DATA_NAMES.get(d.name, d.name) + (f" ({d.limit} training images)" if d.limit else "")


def _ok(v):
  return isinstance(v, dict) and "curves" in v


def _acc(v):
  """seeds × evaluations test accuracy in %."""
  return 100 * (1.0 - np.asarray(v["curves"]["test_error"], float))


def _final(v):
  a = 100 * np.asarray(v["final_acc"], float)
  return a.mean(), a.std()


def _fig1(s, title):
  v = s["variants"]
  fig, axes = plots.figure(1, 2, width=5.2, height=3.8)
  for m in ("CE", "SLN", "SLN-MO"):
    if _ok(v.get(m)):
      plots.mean_band(axes[0, 0], v[m]["epoch"], _acc(v[m]), color=COLORS[m], label=m)
  axes[0, 0].set(ylabel="test accuracy (%)", title="test accuracy (band: ± std)")
  for m, ls in (("CE", "-"), ("SLN", "--")):
    for subset in ("clean", "noisy") if _ok(v.get(m)) else ():
      plots.mean_band(axes[0, 1], v[m]["epoch"], v[m]["curves"][f"{subset}_loss"], ls=ls,
                      color=plots.COLORS[subset], label=f"{m}, {subset} samples")
  axes[0, 1].set(ylabel="mean CE loss against the given labels",
                 title="training loss (CE solid, SLN dashed)")
  for ax in axes[0]:
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)
  fig.suptitle(f"Fig. 1: {title}", fontsize=9)
  fig.tight_layout()
  return fig


def _ce_sln(s, title, draw, legend_below=False, **kwargs):
  """One panel per model (CE, SLN) of the per-sample records; draw(ax, rec) -> axis labels."""
  fig, axes = plots.figure(1, 2, sharey=True, height=3.6, **kwargs)
  for ax, m in zip(axes[0], ("CE", "SLN")):
    if m in s["per_sample"]:
      xlabel, ylabel = draw(ax, {k: np.asarray(a) for k, a in s["per_sample"][m].items()})
      ax.set(xlabel=xlabel, title=m)
      axes[0, 0].set_ylabel(ylabel)
    else:
      ax.set_axis_off()
  fig.suptitle(title, fontsize=9)
  if legend_below:
    drawn = axes[0, 0] if "CE" in s["per_sample"] else axes[0, 1]
    fig.legend(*drawn.get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8,
               frameon=False)
  fig.tight_layout(rect=(0, 0.07 if legend_below else 0, 1, 1))
  return fig


def _confidence(ax, rec):
  p, noisy = rec["p_label"].astype(float).ravel(), rec["is_noisy"].astype(bool).ravel()
  for subset, sel in (("clean", ~noisy), ("noisy", noisy)):
    if sel.any():
      ax.hist(p[sel], bins=np.linspace(0, 1, 41), density=True, alpha=0.6,
              color=plots.COLORS[subset], label=f"{subset} ({int(sel.sum())})")
  ax.set_xlim(0, 1)
  ax.legend(fontsize=7, loc="upper center")
  return "softmax probability of the given label", "density"


def dissection(rec, seed=0, bins=40):
  """Fig. 4: counts (4 types × bins) of samples sorted by ascending loss, and bin size."""
  order = np.argsort(np.asarray(rec["loss"][seed]), kind="stable")
  noisy = np.asarray(rec["is_noisy"][seed], bool)[order]
  right = (np.asarray(rec["prediction"][seed]) == np.asarray(rec["clean_label"][seed]))[order]
  chunks = np.array_split(np.arange(len(order)), min(bins, len(order)))
  counts = np.array([[np.sum((noisy[c] == n) & (right[c] == r)) for c in chunks]
                     for (n, r), _, _ in TYPES])
  return counts, len(chunks[0])


def _stacked(ax, rec):
  counts, size = dissection(rec)
  x, bottom = np.arange(counts.shape[1]), np.zeros(counts.shape[1])
  for row, (_, label, color) in zip(counts, TYPES):
    ax.bar(x, row, bottom=bottom, width=1.0, color=color, label=label, lw=0)
    bottom += row
  ax.set_xlim(-0.5, len(x) - 0.5)
  return f"interval of ascending loss ({size} samples each)", "samples"


def _fig6(s, title):
  keys = sorted(s["sigma_sweep"], key=float)
  sigmas, x = [0.0] + [float(k) for k in keys], np.arange(len(keys) + 1)
  runs = [s["variants"]["CE"]] + [s["sigma_sweep"][k] for k in keys]
  fig, ((ax,),) = plots.figure(width=5.5, height=3.8)
  for key, fmt, label in (("final_acc", "o-", "at the end"), ("peak_acc", "s--", "peak")):
    a = np.array([100 * np.asarray(v[key], float) for v in runs])
    ax.errorbar(x, a.mean(1), yerr=a.std(1), fmt=fmt, capsize=4, label=f"{label} (mean ± std)",
                alpha=1 if key == "final_acc" else 0.5)
  if s["sigma"] in sigmas:
    ax.axvline(sigmas.index(s["sigma"]), color="gray", ls=":", label="σ of the tables")
  ax.set_xticks(x, ["0 (CE)" if g == 0 else f"{g:g}" for g in sigmas])
  ax.set(xlabel="SLN σ", ylabel="test accuracy (%)")
  ax.legend(fontsize=7)
  ax.set_title(f"Fig. 6: {title}", fontsize=9)
  return fig


def _fig10(s, title, config):
  v = s["variants"]
  fig, ((ax,),) = plots.figure(width=5.8, height=3.8)
  for m, ls, label in (("SLN-MO-LC", "-", "SLN-MO-LC: ω·y + (1 − ω)·S"),
                       ("LC reversed", "--", "reversed: (1 − ω)·y + ω·S"),
                       ("SLN-MO", ":", "SLN-MO (no correction)")):
    if _ok(v.get(m)):
      epochs = np.asarray(v[m]["epoch"], float)  # from the last third (or the LC start) on
      first = max(int(np.searchsorted(epochs, min(epochs[-1] * 2 / 3, config.lc_epoch))) - 1, 0)
      plots.mean_band(ax, epochs[first:], _acc(v[m])[:, first:], color=COLORS[m], ls=ls,
                      label=label)
      ax.set_xlim(epochs[first], epochs[-1])
  ax.axvline(config.lc_epoch, color="k", ls=":", lw=1, label="label correction starts")
  ax.set(xlabel="epoch", ylabel="test accuracy (%)")
  ax.legend(fontsize=7)
  ax.set_title(f"Fig. 10: {title}; last third of training", fontsize=9)
  return fig


def _table(record, config, names):
  present = {m for n in names for m in record[n]["variants"]}
  methods = [m for m in METHODS if m in present] + sorted(present - set(METHODS))
  width, top = 0.85 / len(methods), 0.0
  fig, ((ax,),) = plots.figure(width=max(6.0, 0.35 * len(methods) * len(names) + 2), height=4.2)
  for j, m in enumerate(methods):
    stats = [_final(record[n]["variants"][m]) if _ok(record[n]["variants"].get(m))
             else (np.nan, np.nan) for n in names]
    x = np.arange(len(names)) + (j - (len(methods) - 1) / 2) * width
    means, stds = np.array(stats).T
    ax.bar(x, means, width, yerr=stds, capsize=2, color=COLORS.get(m, f"C{j}"), label=m)
    for xi, mi, si in [p for p in zip(x, means, stds) if np.isfinite(p[1])]:
      ax.text(xi, mi + si + 0.5, f"{mi:.1f}", rotation=90, ha="center", va="bottom", fontsize=6)
      top = max(top, mi + si)
  ax.set_xticks(np.arange(len(names)), names)
  ax.set(ylabel="test accuracy at the end (%, mean ± std)", ylim=(0, min(top + 12, 110)))
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  ax.set_title(f"Tables 1–2: {_data(config)}, {config.seeds} seeds, mean of the last "
               f"{config.last_evals} evaluations", fontsize=9)
  return fig


def _fig8(record, config, names):
  seconds, name = record["seconds_per_epoch"], "symmetric" if "symmetric" in names else names[0]
  v = record[name]["variants"]
  fig, ((ax,),) = plots.figure(width=5.5, height=4.0)
  for m in [m for m in seconds if _ok(v.get(m))]:
    (mean, std), x = _final(v[m]), 1.0 / seconds[m]
    ax.errorbar(x, mean, yerr=std, fmt="o", capsize=3, color=COLORS.get(m, "C0"))
    ax.annotate(m, (x, mean), xytext=(5, 4), textcoords="offset points", fontsize=8)
  ax.margins(0.15)
  ax.set(xlabel="training efficiency: 1 / (seconds per epoch)",
         ylabel="test accuracy at the end (%)")
  ax.set_title(f"Fig. 8: {_data(config)}, {name} noise; methods timed one after another",
               fontsize=9)
  return fig


def plot_methods(record, config) -> dict:
  names = [n for n, s in record.items() if isinstance(s, dict) and "variants" in s]
  out = {}
  for name in names:
    s, v = record[name], record[name]["variants"]
    title = (f"{_data(config)}, {name} noise (rate {s['noise_rate']:.2f}), SLN σ = "
             f"{s['sigma']:g}")
    if any(_ok(v.get(m)) for m in ("CE", "SLN", "SLN-MO")):
      out[f"{name}_fig1_curves.png"] = _fig1(s, title)
    if s.get("per_sample"):
      out[f"{name}_fig3_confidence.png"] = _ce_sln(
          s, f"Fig. 3: {title}; training samples at the end, "
          f"{len(next(iter(s['per_sample'].values()))['p_label'])} seeds pooled",
          _confidence, width=4.6)
      out[f"{name}_fig4_dissection.png"] = _ce_sln(
          s, f"Figs. 4 / 9: {title}; seed 0 at the end (prediction ✓: = true label)", _stacked,
          legend_below=True, width=4.8)
    if s.get("sigma_sweep") and _ok(v.get("CE")):
      out[f"{name}_fig6_sigma.png"] = _fig6(s, title)
    if any(_ok(v.get(m)) for m in ("SLN-MO-LC", "LC reversed")):
      out[f"{name}_fig10_label_correction.png"] = _fig10(s, title, config)
  if names:  # the more_noise part saves into the same workdir
    more = "seconds_per_epoch" not in record and set(names) <= set(config.get("more_settings", {}))
    out["more_noise_table.png" if more else "methods_table.png"] = _table(record, config, names)
  if record.get("seconds_per_epoch") and names:
    out["fig8_time.png"] = _fig8(record, config, names)
  return out


def _sgd_variants(record, config):
  """[(name, colour)]: CE, eq. 1 levels (blues), eq. 2 levels (oranges), SLN."""
  v, sn, out = record["variants"], config.sgd_noise, [("CE", "black")]
  for eq, key, cmap in (("eq1", "sigma_theta", "Blues"), ("eq2", "sigma_f", "Oranges")):
    shades = np.linspace(0.45, 0.9, len(sn[key]))
    out += [(f"{eq} σ={s:g}", matplotlib.colormaps[cmap](c)) for s, c in zip(sn[key], shades)]
  out.append(("SLN", "tab:purple"))
  return [(n, c) for n, c in out if n in v] + [(n, "gray") for n in v if n not in dict(out)]


def _fig5(record, config):
  v, variants = record["variants"], _sgd_variants(record, config)
  fig, axes = plots.figure(1, 2, width=5.6, height=4.0)
  ax, stats = axes[0, 0], {n: _final(v[n]) for n, _ in variants if _ok(v[n])}
  height = max([m + s for m, s in stats.values()], default=50.0)
  for i, (n, color) in enumerate(variants):
    if n in stats:
      ax.bar(i, stats[n][0], yerr=stats[n][1], capsize=3, color=color, edgecolor="k", lw=0.5)
      ax.text(i, sum(stats[n]) + 0.5, f"{stats[n][0]:.1f}", ha="center", va="bottom", fontsize=7)
    else:
      ax.bar(i, height, fill=False, hatch="//", edgecolor=color)
      ax.text(i, height / 2, "diverged", rotation=90, ha="center", va="center", fontsize=8)
  sigma = config.settings.symmetric.sigma
  ax.set_xticks(range(len(variants)), [f"SLN σ={sigma:g}" if n == "SLN" else n
                                       for n, _ in variants], rotation=35, ha="right")
  ax.set(ylabel="test accuracy at the end (%, mean ± std)", ylim=(0, height * 1.12),
         title="eq. 1: noise on ∇θℓ, eq. 2: on ∇fℓ, SLN: on the label")
  for n, color in [p for p in variants if p[0] in stats]:
    plots.mean_band(axes[0, 1], v[n]["epoch"], _acc(v[n]), color=color, label=n)
  axes[0, 1].set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy (band: ± std)")
  axes[0, 1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  noise = config.settings.symmetric.noise
  fig.suptitle(f"Fig. 5: SGD noise variants, {_data(config)}, {noise.kind} noise "
               f"{noise.rate:g}, {config.seeds} seeds", fontsize=9)
  fig.tight_layout()
  return fig


def _models(record):
  """[(key, label)] of the landscapes with at least one seed."""
  land, middle = record["landscapes"], record.get("middle", {})
  order = lambda m: list(LANDSCAPES).index(m) if m in LANDSCAPES else len(LANDSCAPES)
  return [(m, middle.get(m, m)) for m in sorted((m for m in land if land[m]), key=order)]


def _fig2(record, config):
  land, models = record["landscapes"], _models(record)
  grids = {m: np.asarray(land[m][0]["grid"], float) for m, _ in models}
  lo, hi = min(g.min() for g in grids.values()), max(g.max() for g in grids.values())
  log = lo > 0 and hi / lo > 30
  levels = np.geomspace(lo, hi, 21) if log else np.linspace(lo, hi + 1e-12, 21)
  norm = (matplotlib.colors.LogNorm if log else matplotlib.colors.Normalize)(lo, hi)
  fig, axes = plots.figure(1, len(models), width=3.3, height=3.7, sharey=True,
                           layout="constrained")
  for ax, (m, label) in zip(axes[0], models):
    axis, first, g = np.asarray(land[m][0]["axis"], float), land[m][0], grids[m]
    filled = ax.contourf(axis, axis, g.T, levels=levels, norm=norm, cmap="viridis")
    ax.contour(axis, axis, g.T, levels=levels, colors="k", linewidths=0.3)
    ax.plot(0, 0, "w+", ms=8)
    centre = g[np.argmin(np.abs(axis)), np.argmin(np.abs(axis))]
    ax.set_title(f"{label}\nloss at the centre {centre:.3g}\nsharpness {first['sharpness']:.3g}"
                 f", noise energy {first['noise_energy']:.3g}", fontsize=8)
    ax.set(xlabel="direction 1", aspect="equal")
  axes[0, 0].set_ylabel("direction 2")
  bar = fig.colorbar(filled, ax=list(axes[0]), label="training loss (one scale)", shrink=0.8)
  ticks = np.geomspace(lo, hi, 6) if log else np.linspace(lo, hi, 6)
  bar.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
  fig.suptitle(f"Fig. 2: filter-normalized loss slices around each solution, {_data(config)}, "
               f"seed 0 ({config.landscape.samples} training samples; sharpness: mean rise "
               f"within r = {config.landscape.radius:g})", fontsize=9)
  return fig


def _app_e(record, config):
  land, models = record["landscapes"], _models(record)
  fig, axes = plots.figure(1, 3, width=3.8, height=3.6)
  for ax, key, ylabel in ((axes[0, 0], "noise_energy", "SLN noise energy mean ‖∇θ log S‖²_F"),
                          (axes[0, 1], "output_sharpness", "output sharpness mean ‖∇θ f‖²_F"),
                          (axes[0, 2], "sharpness", "loss sharpness (slice, radius r)")):
    for i, (m, _) in enumerate(models):
      vals, color = np.array([x[key] for x in land[m]], float), LANDSCAPES.get(m, "gray")
      ax.plot(i + np.linspace(-0.12, 0.12, len(vals)), vals, "o", color=color, alpha=0.6, ms=5)
      ax.hlines(np.mean(vals), i - 0.3, i + 0.3, color=color, lw=2.5)
    ax.set_xticks(range(len(models)), [label for _, label in models], rotation=30, ha="right")
    ax.set(yscale="log", ylabel=ylabel, xlim=(-0.6, len(models) - 0.4))
  fig.suptitle(f"App. E: at each solution, {_data(config)} (points: seeds; bar: mean)",
               fontsize=9)
  fig.tight_layout()
  return fig


def plot_sgd_noise(record, config) -> dict:
  out = {"fig5_sgd_noise.png": _fig5(record, config)} if record.get("variants") else {}
  if any(record.get("landscapes", {}).values()):
    out.update({"fig2_landscapes.png": _fig2(record, config),
                "appE_noise_energy.png": _app_e(record, config)})
  return out


def plot_theory(record, config) -> dict:
  t, floor = config.theory, 1e-18
  fig, ((ax,),) = plots.figure(width=6.0, height=3.8)
  bars = [(f"Prop. {i}\nexact", record[f"exact_prop{i}"], "C0") for i in (1, 2, 3)
          if f"exact_prop{i}" in record]
  for i in [i for i in (1, 3) if f"mc_prop{i}" in record]:
    bars += [(f"Prop. {i}\nMC", record[f"mc_prop{i}"], "C1"),
             (f"Prop. {i}\n4 s.e.", 4 * record[f"mc_prop{i}_stderr"], "none")]
  for j, (_, value, color) in enumerate(bars):
    ax.bar(j, max(value, floor), color=color, edgecolor="C1" if color == "none" else color,
           hatch="//" if color == "none" else None)
    ax.text(j, max(value, floor) * 1.5, f"{value:.2g}", ha="center", va="bottom", fontsize=7)
  ax.hlines(1e-10, -0.4, 2.4, color="C0", ls="--", lw=1, label="exact: tolerance 1e-10")
  ax.bar(0, 0, color="none", edgecolor="C1", hatch="//", label="MC: 4 standard errors")
  ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=7)
  ax.set(yscale="log", ylabel="error", ylim=(floor, 10))
  ax.legend(fontsize=7, loc="upper left")
  ax.set_title(f"Props. 1–3, tanh MLP {t.inputs}-{t.hidden}-{t.classes} "
               f"({record.get('num_params', '?')} parameters): exact max |F Fᵀ − Cov|;\n"
               f"Monte Carlo (MC, {record.get('draws', '?')} draws): relative Frobenius error "
               "of the covariance", fontsize=8)
  return {"props.png": fig}
