"""Figures of experiments/pure_noise.py: each a function of one part's record."""

import numpy as np

from noisejax import plots
from noisejax.theory import pure_noise as pn

LOSS_COLORS = {"hinge": "C0", "logistic": "C1"}


def _sci_steps(ax):
  ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))


def plot_single(record, config) -> dict:
  """Fig. 2: ‖V‖ over the steps at h = 1/d², and the equilibrium against h."""
  d, h_H, steps_R = config.d, np.asarray(record["h"]), record["steps"]
  summary, base = record["summary"], record["base"]
  h = h_H[base]
  fig, axes = plots.figure(1, 2)
  ax = axes[0, 0]
  for loss in pn.SURROGATES:
    ax.plot(steps_R, record["mean_norms"][loss][base], color=LOSS_COLORS[loss], label=loss)
  ax.axhline(d * h, ls="--", color="gray", label=f"dh = {d * h:.3g}")
  ax.axhline(d * np.sqrt(h), ls=":", color="gray", label=f"d√h = {d * np.sqrt(h):.3g}")
  ax.set(xlabel="SGD step", ylabel="‖V‖", yscale="log",
         title=f"one neuron, pure noise, d = {d}, h = 1/d²")
  ax.legend(fontsize=8)
  _sci_steps(ax)
  ax = axes[0, 1]
  for loss in pn.SURROGATES:
    color = LOSS_COLORS[loss]
    ax.loglog(h_H, summary[loss]["equilibrium"], "o-", color=color,
              label=f"{loss} (slope {summary[loss]['slope_in_h']:.2f})")
    ax.loglog(h_H, summary[loss]["predicted"], "--", color=color, alpha=0.6,
              label="0.63·dh" if loss == "hinge" else "√(dh/2)")
  ax.loglog(h_H, d * h_H, ":", color="gray", label="dh")
  ax.loglog(h_H, d * np.sqrt(h_H), "-.", color="gray", label="d√h")
  ax.set(xlabel="learning rate h", ylabel="equilibrium ‖V‖",
         title="Theorem 2: equilibrium vs h")
  ax.legend(fontsize=7)
  return {"fig2_single_neuron.png": fig}


def plot_hidden(record, config) -> dict:
  """Fig. 3 (no bias: weight norms) and Fig. 4 (bias: norms, active fraction, biases)."""
  d, h, steps_R, curves = config.d, record["h"], record["steps"], record["curves"]
  fig3, axes = plots.figure(1, 2)
  for loss in pn.SURROGATES:
    rec = curves[f"nobias_{loss}"]
    axes[0, 0].plot(steps_R, rec["w_norm"], color=LOSS_COLORS[loss], label=f"‖W‖_F, {loss}")
    axes[0, 1].plot(steps_R, rec["v_norm"], color=LOSS_COLORS[loss], label=f"‖V‖, {loss}")
  for ax, name in zip(axes[0], ("hidden layer ‖W‖_F", "output layer ‖V‖")):
    ax.set(xlabel="SGD step", ylabel=name, yscale="log",
           title=f"Fig. 3: no bias, width 4d = {4 * d}, h = {h:.3g}")
    ax.legend(fontsize=8)
    _sci_steps(ax)

  fig4, axes = plots.figure(1, 3)
  for loss in pn.SURROGATES:
    rec, color = curves[f"bias_{loss}"], LOSS_COLORS[loss]
    axes[0, 0].plot(steps_R, rec["w_norm"], color=color, label=f"‖W‖_F, {loss}")
    axes[0, 0].plot(steps_R, rec["v_norm"], color=color, ls="--", label=f"‖V‖, {loss}")
    axes[0, 1].plot(steps_R, rec["active_fraction"], color=color, label=loss)
  tracked_RxK = curves["bias_logistic"]["b_tracked_seed0"]
  axes[0, 2].plot(steps_R, tracked_RxK, lw=1)
  axes[0, 0].set(xlabel="SGD step", ylabel="norm", yscale="log", title="(a) weight norms")
  axes[0, 1].set(xlabel="SGD step", ylabel="E_x A_N(x) / 4d",
                 title="(b) fraction of active neurons")
  axes[0, 2].set(xlabel="SGD step", ylabel="bias b_i",
                 title=f"(c) biases of {tracked_RxK.shape[1]} neurons (logistic)")
  axes[0, 0].legend(fontsize=7)
  axes[0, 1].legend(fontsize=8)
  for ax in axes[0]:
    _sci_steps(ax)
  fig4.suptitle(f"Fig. 4: with bias, pure noise on N(0, I_{d}), h = {h:.3g}")
  return {"fig3_no_bias.png": fig3, "fig4_with_bias.png": fig4}


def plot_basis(record, config) -> dict:
  """Theorems 3–4: |N(e_i)|/2kh and the zero coordinates against h, the o(k) excess."""
  rows, ks = record["rows"], list(config.basis.ks)
  fig, axes = plots.figure(1, 3)
  for k in ks:
    sel = sorted((r for r in rows if r["k"] == k), key=lambda r: r["h"])
    hs = [r["h"] for r in sel]
    axes[0, 0].semilogx(hs, [r["max_output_over_2kh"] for r in sel], "o-", label=f"k = {k}")
    axes[0, 1].semilogx(hs, [r["mean_zero_fraction"] for r in sel], "o-", label=f"k = {k}")
  axes[0, 0].axhline(1.0, color="k", ls="--", label="Theorem 3 bound")
  axes[0, 0].set(xlabel="h", ylabel="max_i |N(e_i)| / 2kh", title="Theorem 3")
  axes[0, 1].axvline(1.0, color="k", ls=":")
  axes[0, 1].set(xlabel="h", ylabel="fraction of zero coordinates of ReLU(W e_i)",
                 title="Theorem 4: larger h, sparser (all dead for h ≥ 1)")
  small = [r for r in rows if r["regime"] == "small"]
  for label, field in (("after training", "max_excess_zeros_over_k"),
                       ("at initialization", "init_max_excess_zeros_over_k")):
    axes[0, 2].loglog(ks, [max(r[field] for r in small if r["k"] == k) for k in ks], "o-",
                      label=label)
  axes[0, 2].loglog(ks, [3 * k**-0.4 for k in ks], "k--", label="3k^-0.4 (proof's o(k))")
  axes[0, 2].set(xlabel="k", ylabel="(max_i #zeros − k)/k, h ≤ 1/k",
                 title="Theorem 4.2: o(k)")
  for ax in axes[0]:
    ax.legend(fontsize=7)
  return {"thm34_standard_basis.png": fig}
