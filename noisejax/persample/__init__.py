"""Sample-wise gradients, Jacobians, the empirical NTK and subset-gradient diagnostics.

Conventions. A model enters as `apply_fn(params, x_B) -> outputs_BxK`, the pre-activation
outputs h (logits) of a batch; it must treat samples independently (models with
BatchNorm are called in eval mode, with running statistics: `eval_apply_fn`). A
per-sample loss is `loss_fn(outputs_BxK, labels_B) -> losses_B` (`noisejax.losses`).

What is computed (clean-priority §2–§5, early-stopping §3):
  ∇l_i = J_iᵀ r_i with r_i = ∂l_i/∂h_i (`residuals`; = f − y for softmax-CE and
  logistic, eq. 5); single-logit gradients ∇l_{c,i} = r_{i,c} ∇h_c(x_i) (eq. 13,
  Σ_c ∇l_{c,i} = ∇l_i); model derivatives ∇h(x_i) (rows of the Jacobian J), the NTK Gram
  J Jᵀ in blocks and the singular values of J; subset gradients g_k^(c) = Σ_{i ∈ D_k^(c)}
  ∇l_i for k ∈ {clean, noise, other} (§3.2), their norms, the ratio ‖g_clean‖/‖g_noise‖
  (eq. 8, eq. 14) and the angles θ_g between sample gradients and subset gradients
  (Figs. 4, 10).

Two routes give the same numbers (`method=`):
  "vmap"  — `vmap` of a per-sample `vjp`: any model, materializes B×P gradients.
  "taps"  — one batched forward and one batched backward pass per cotangent set through
            the private tap engine (`_taps.py`): every equation where a parameter meets
            an activation gets a zero perturbation ε; the gradient w.r.t. ε and the
            equation's input give each sample's parameter gradient, and for dense layers
            inner products come from (a_i·a_j)(g_i·g_j) without forming any ∇W_i.
            Subset gradients are weighted sums over samples (weights_BxS), so norms,
            ratios and angles need only ‖∇l_i‖², ⟨∇l_i, g_s⟩ and ⟨g_s, g_t⟩ (`GradStats`).
            Memory: the clean-priority CNN at B = 512 needs < 0.5 GB.
  "auto"  — "taps", falling back to "vmap" for programs it cannot split (a parameter used
            inside a scan, a custom_jvp rule, …).

Several devices: all functions are pure and jit-able; place the batch with
`shard_batch` (NamedSharding over a 1-D mesh of all devices) and the same code runs
data-parallel, XLA inserting the collectives. Caveat (jax 0.10.2): with a sharded batch,
XLA's partitioner miscompiles `vmap(grad)` through a convolution followed by a
nonlinearity (only the first device's samples come out right), so the "vmap" route is
wrong there while "taps" is exact (tests/test_persample_devices.py).

`noisejax.persample.benchmark` (not imported here) holds the reference implementations the
benchmark times against: a plain step, a loop of jax.grad, torch.func.

Example (the clean / noise subsets of every class of a batch, at the model's weights):

  stats = persample.subset_gradient_stats(model, variables, x_B, given_B, true_B,
                                          num_classes=10)
  stats["ratio_C"]             # ‖g_clean^(c)‖ / ‖g_noise^(c)‖, eq. 14
"""

from noisejax.persample._base import (METHODS, GradStats, angle, cosine, eval_apply_fn,
                                      flatten_tree, link, residuals)
from noisejax.persample._devices import batch_mesh, replicate, shard_batch
from noisejax.persample._diagnostics import (diagnostic_step, diagnostics,
                                             make_diagnostic_step)
from noisejax.persample._grads import (flat_jacobian, jacobian_singular_values,
                                       jvp_inner_products, model_jacobian, ntk_gram,
                                       per_sample_grads, sample_grad_stats, sample_grads,
                                       single_logit_grads)
from noisejax.persample._subsets import (SUBSETS, class_subset_weights,
                                         clean_noise_stats_by_class,
                                         full_gradient_cosine, geometry,
                                         group_by_true_class, subset_gradient_stats,
                                         subset_masks, subset_stats)
from noisejax.persample._taps import UnsupportedModel

__all__ = [
    # vectors and models as per-sample functions
    "flatten_tree", "cosine", "angle", "eval_apply_fn", "link", "residuals",
    # sample gradients, Jacobians, NTK
    "per_sample_grads", "single_logit_grads", "model_jacobian", "flat_jacobian",
    "jvp_inner_products", "ntk_gram", "jacobian_singular_values",
    # inner products of sample gradients (tap engine or vmap)
    "METHODS", "GradStats", "UnsupportedModel", "sample_grad_stats", "sample_grads",
    # subsets of a noisy set (clean-priority §3.2)
    "SUBSETS", "subset_masks", "class_subset_weights", "subset_stats", "geometry",
    "subset_gradient_stats", "group_by_true_class", "clean_noise_stats_by_class",
    "full_gradient_cosine",
    # the diagnostic train step
    "diagnostics", "diagnostic_step", "make_diagnostic_step",
    # several devices
    "batch_mesh", "shard_batch", "replicate",
]
