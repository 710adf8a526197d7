"""``interp check``: verify, on *your* model, the identities every number of this toolkit rests on.

The toolkit's speed comes from shortcuts that are exact only if the model behaves as assumed: the
frozen-prefix engine (`interp.engine`) reuses the prefix's keys and values and runs only the final token;
`run_from` restarts the final token at a layer; head contributions ``z @ W_O[h]`` are assumed to sum to
the attention output. A new architecture, a new dtype or a new device can break any of them silently.
`check_model` runs each shortcut and its slow reference on a few left-padded prompts of unequal lengths:

==================  ============================================================================
check               shortcut  ==  reference
==================  ============================================================================
final_logits        ``engine.final_logits`` (final position only)  ==  ``model(tokens)[:, -1]``
left_padding        a left-padded row  ==  the same prompt alone, unpadded
head_identity       ``Σ_h z[h] @ W_O[h] + b_O``  ==  the attention layer's output (every layer)
engine_<hooks>      frozen prefix + one-token run  ==  full recompute, with no hook, an addition at
                    every layer, a hidden-state replacement, a per-row head patch
run_from            blocks ``l..L-1`` from the cached ``hook_resid_pre``  ==  full run (every l)
ltv_gradient        dLoss/dθ through the frozen prefix  ==  through the full recompute
cie                 the library's causal indirect effects  ==  one full forward per patched head
==================  ============================================================================

How a check is judged depends on the dtype.

**float32** (and float64): the shortcut must equal the reference, ``|fast - ref| <= rtol * max(1, max|ref|)``
with ``rtol`` 1e-4 (floor 1e-3 instead of 1 for gradients and CIEs, which can be tiny). Two exact float32
computations differ by rounding only; a bug moves logits by O(1).

**bfloat16 / float16**: "equal to the 16-bit reference" is the wrong question. Both paths round at every
step, in a different order (the engine's shared-prefix attention scores the prefix and the final token's own
key separately; `interp.shared_attention`), and over 30 layers those roundings grow: on SmolLM2-135M in bf16
the engine and TransformerLens's own forward differ by up to 0.4-0.6 in a logit, while *each* is ~0.5 from
the exact (float32) answer. So every check also runs its reference on a **float32 copy of the same model**
(the 16-bit weights, upcast; rotary tables recomputed in float32), with the same inputs and intervention
values, and asks whether the shortcut is about as accurate as the 16-bit reference path:

    max|fast - ref32|  <= FACTOR_16BIT * max|ref16 - ref32|  + ulp * max(floor, max|ref32|)
    mean|fast - ref32| <= FACTOR_16BIT * mean|ref16 - ref32| + ulp * max(floor, mean|ref32|)

with ``FACTOR_16BIT`` 2 (``FACTOR_16BIT_DERIVED`` 4 for the LTV gradient and the CIEs, second-order
quantities of a few values whose rounding scatters more) and ``ulp`` 2^-8 (bf16) / 2^-11 (fp16), one unit in
the last place (``floor`` is 1 for logits, 1e-3 for gradients, P(target) x max|logit| for CIEs). Both errors
are reported per check (``fast_err`` / ``ref_err``, max and mean), so a user sees how far each path is from
float32; ``max_abs_diff`` is still the direct 16-bit difference, for information. A real engine bug (a
missing soft-cap or window mask, a wrong position) makes the shortcut O(1) worse than the reference path
and fails; `tests/test_check.py` breaks the engine on purpose in bf16 to prove it. The float32 copy costs
one model's weights in float32 on the model's device, for the duration of the check.

A model the engine cannot handle is *refused* with the reason (`interp.engine.UnsupportedModelError`)
instead of being checked.

    checks = check_model(model)                  # list[Check]
    report = check_families()                    # every tiny architecture family (interp.families)
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

# float32 (and float64): relative tolerances of exact computations that differ only by rounding order.
RTOL = {torch.float64: 1e-8, torch.float32: 1e-4}
# 16-bit dtypes: one unit in the last place, the additive floor of the float32-referenced criterion.
ULP = {torch.bfloat16: 2**-8, torch.float16: 2**-11}
# A 16-bit shortcut passes when its error against float32 is at most this multiple of the 16-bit reference
# path's own error (max and mean), plus one ulp. Measured (results/device/check_16bit.md): over the 24 tiny
# families and SmolLM2-135M / Gemma-3-270M, the shortcut's error in a forward value (logits, attention outputs)
# was at most 1.8x the reference path's (bf16 and fp16); a broken soft-cap, window or position is many times worse.
FACTOR_16BIT = 2.0
# Gradients and CIEs are second-order quantities (a backward pass; differences of probabilities) of a few
# values each, whose rounding errors scatter more: up to 2.1x (LTV gradient) and 5.6x (CIE means, where the
# ulp floor dominates) on the tiny families. A bug moves them by O(100%).
FACTOR_16BIT_DERIVED = 4.0


def is_16bit(dtype: torch.dtype) -> bool:
    return dtype in ULP


@dataclass
class Check:
    """One shortcut against its reference (see the module docstring for how 16-bit checks are judged)."""

    name: str
    max_abs_diff: float  # max |fast - reference|, both in the model's dtype
    scale: float  # max |reference| (16-bit: of the float32 reference)
    tol: float  # the bound the measured error had to meet (float32: on max_abs_diff; 16-bit: on fast_err)
    passed: bool
    note: str = ""
    # 16-bit only: errors against the float32 reference (None for float32 models)
    fast_err: float | None = None  # max |fast - ref32|
    fast_err_mean: float | None = None
    ref_err: float | None = None  # max |ref16 - ref32|
    ref_err_mean: float | None = None
    mean_tol: float | None = None  # the bound on fast_err_mean

    @property
    def measured(self) -> float:
        """The number compared with ``tol``."""
        return self.max_abs_diff if self.fast_err is None else self.fast_err

    def to_dict(self) -> dict:
        return asdict(self)


def model_dtype(model) -> torch.dtype:
    return next(model.parameters()).dtype


def _compare(name: str, fast: Tensor, ref: Tensor, rtol: float, note: str = "", floor: float = 1.0) -> Check:
    """``max|fast - ref| <= rtol * max(floor, max|ref|)``: relative to the reference's size, with a floor
    (1 for logits and residual-stream vectors; small for gradients and CIEs, which can be tiny)."""
    fast, ref = fast.detach().double(), ref.detach().double().to(fast.device)
    if fast.shape != ref.shape:
        return Check(
            name, math.inf, math.nan, math.nan, False, f"shape {list(fast.shape)} != {list(ref.shape)}"
        )
    diff = (fast - ref).abs().max().item() if fast.numel() else 0.0
    scale = ref.abs().max().item() if ref.numel() else 0.0
    tol = rtol * max(floor, scale)
    ok = math.isfinite(diff) and diff <= tol
    return Check(name, diff, scale, tol, ok, note)


def _compare_16bit(
    name: str, fast: Tensor, ref: Tensor, ref32: Tensor, dtype: torch.dtype, note: str = "", floor: float = 1.0,
    factor: float = FACTOR_16BIT,
) -> Check:  # fmt: skip
    """The float32-referenced criterion of the module docstring: ``fast`` may be at most ``factor`` times as
    far from ``ref32`` as the 16-bit reference ``ref`` is (max and mean), plus one ulp."""
    fast, ref, ref32 = (t.detach().double().to(fast.device) for t in (fast, ref, ref32))
    if not fast.shape == ref.shape == ref32.shape:
        return Check(name, math.inf, math.nan, math.nan, False,
                     f"shapes {list(fast.shape)}, {list(ref.shape)}, float32 {list(ref32.shape)}")  # fmt: skip
    if not fast.numel():
        return Check(name, 0.0, 0.0, 0.0, True, note, 0.0, 0.0, 0.0, 0.0, 0.0)
    fast_err, ref_err = (fast - ref32).abs(), (ref - ref32).abs()
    ulp = ULP[dtype]
    scale, mean_scale = ref32.abs().max().item(), ref32.abs().mean().item()
    tol = factor * ref_err.max().item() + ulp * max(floor, scale)
    mean_tol = factor * ref_err.mean().item() + ulp * max(floor, mean_scale)
    fe, fe_mean = fast_err.max().item(), fast_err.mean().item()
    ok = math.isfinite(fe) and fe <= tol and fe_mean <= mean_tol
    return Check(name, (fast - ref).abs().max().item(), scale, tol, ok, note, fe, fe_mean, ref_err.max().item(),
                 ref_err.mean().item(), mean_tol)  # fmt: skip


def float32_reference(model):
    """A float32 copy of ``model`` (its 16-bit weights upcast, so only the arithmetic differs), with rotary
    tables recomputed in float32 (they are constants of the architecture, not weights)."""
    from interp.models import _reinit_buffers

    tokenizer = getattr(model, "tokenizer", None)
    model.tokenizer = None  # the tokenizer is shared, not copied
    try:
        ref = copy.deepcopy(model)
    finally:
        model.tokenizer = tokenizer
    ref.tokenizer = tokenizer
    ref = ref.to(torch.float32, print_details=False) if hasattr(ref, "cfg") else ref.to(torch.float32)
    if hasattr(ref, "cfg"):
        ref.cfg.dtype = torch.float32
        if hasattr(ref, "blocks"):
            _reinit_buffers(ref)
    ref.eval()
    return ref


# ----------------------------------------------------------------------------------------------------------
# Prompts: a few left-padded rows of unequal length (text if the model has a tokenizer, else random ids)
# ----------------------------------------------------------------------------------------------------------

_TEXTS = [
    "Q: hot\nA: cold\n\nQ: big\nA: small\n\nQ: up\nA:",
    "The capital of France is Paris. The capital of Italy is",
    "apple -> APPLE\nriver -> RIVER\nstone ->",
    "1, 2, 3, 4, 5,",
]


@dataclass
class CheckBatch:
    """Inputs (token ids, or float vectors for continuous-input models), left-padded; random targets."""

    inputs: Tensor
    attention_mask: Int[Tensor, "batch pos"]
    target_ids: Tensor
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def select(self, idx) -> "CheckBatch":
        idx_t = torch.as_tensor(list(idx), dtype=torch.long, device=self.inputs.device)
        return CheckBatch(
            self.inputs[idx_t], self.attention_mask[idx_t], self.target_ids[idx_t], dict(self.meta)
        )

    def row(self, i: int) -> tuple[Tensor, Tensor]:
        """Row ``i`` without its padding."""
        keep = self.attention_mask[i].bool()
        return self.inputs[i : i + 1, keep], self.attention_mask[i : i + 1, keep]


def _device(model) -> torch.device:
    return model.W_E.device if hasattr(model, "W_E") else next(model.parameters()).device


def check_batch(model, n: int = 4, length: int = 14, seed: int = 0) -> CheckBatch:
    """``n`` prompts of unequal lengths (``length`` down to ``length - 5``), left-padded."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    device = _device(model)
    lengths = [length - (3 * i) % 6 for i in range(n)]
    if hasattr(model, "read_in"):  # continuous inputs (regression models)
        d = model.read_in.in_features
        rows = [torch.randn(k, d, generator=gen, device="cpu") for k in lengths]
        pad_value: Any = torch.zeros(d)
        targets = torch.randn(n, generator=gen, device="cpu")
    else:
        tok = getattr(model, "tokenizer", None)
        if tok is not None:
            ids = [tok(t, add_special_tokens=False)["input_ids"] for t in _TEXTS]
            rows = [torch.tensor((ids[i % len(ids)] * 4)[:k], device="cpu") for i, k in enumerate(lengths)]
        else:
            high = min(model.cfg.d_vocab, 5000)
            rows = [torch.randint(0, high, (k,), generator=gen, device="cpu") for k in lengths]
        pad_value = 0
        targets = torch.randint(0, model.cfg.d_vocab, (n,), generator=gen, device="cpu")
    longest = max(lengths)
    inputs, masks = [], []
    for row in rows:
        pad = longest - row.shape[0]
        if row.ndim == 1:
            inputs.append(torch.cat([torch.full((pad,), pad_value, dtype=row.dtype, device="cpu"), row]))
        else:
            inputs.append(torch.cat([pad_value.expand(pad, -1), row]))
        masks.append(torch.cat([torch.zeros(pad, dtype=torch.long, device="cpu"),
                                torch.ones(row.shape[0], dtype=torch.long, device="cpu")]))  # fmt: skip
    return CheckBatch(torch.stack(inputs).to(device), torch.stack(masks).to(device), targets.to(device))


def _loss(out: Tensor, targets: Tensor) -> Tensor:
    if out.shape[-1] == 1:
        return F.mse_loss(out[:, 0].float(), targets.float())
    return F.cross_entropy(out.float(), targets)


# ----------------------------------------------------------------------------------------------------------
# The checks
# ----------------------------------------------------------------------------------------------------------


def _attn_outputs(model, batch: CheckBatch) -> Float[Tensor, "batch layer d_model"]:
    """Output of every attention module at the final position (before any post-attention norm)."""
    store: dict[int, Tensor] = {}
    handles = [
        block.attn.register_forward_hook(
            lambda mod, args, out, l=l: store.__setitem__(l, out[:, -1].detach())
        )
        for l, block in enumerate(model.blocks)
    ]
    try:
        with torch.no_grad():
            model(batch.inputs, attention_mask=batch.attention_mask, return_type=None)
    finally:
        for h in handles:
            h.remove()
    return torch.stack([store[l] for l in range(model.cfg.n_layers)], dim=1)


def _interventions(model, rows: int, seed: int = 0, value_dtype: torch.dtype | None = None) -> dict[str, list]:
    """The hooks of the engine checks, with seeded random values rounded to ``value_dtype`` (the checked
    model's dtype), so the float32 reference receives exactly the values the 16-bit model does."""
    from interp.interventions import add_vectors, patch_heads, replace_resid

    cfg = model.cfg
    gen = torch.Generator(device="cpu").manual_seed(seed)
    device, dtype = _device(model), model_dtype(model)
    value_dtype = value_dtype or dtype

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device="cpu").to(value_dtype).to(device=device, dtype=dtype)

    z_vals = randn(cfg.n_layers, cfg.n_heads, cfg.d_head)
    return {
        "none": [],
        "add_every_layer": add_vectors(model, randn(cfg.n_layers, cfg.d_model)),
        "replace": replace_resid(model, cfg.n_layers // 2, randn(cfg.d_model)),
        "head_patch": patch_heads(
            model,
            [i % cfg.n_layers for i in range(rows)],
            [(3 * i) % cfg.n_heads for i in range(rows)],
            z_vals,
        ),
    }


def _cie_heads(model, k: int) -> list[tuple[int, int]]:
    L, H = model.cfg.n_layers, model.cfg.n_heads
    heads = [(0, 0), (L // 2, H // 2), (L - 1, H - 1), (L // 3, H - 1), (L - 1, 0)]
    return list(dict.fromkeys(heads))[:k]


class _CheckProblem:
    """The smallest `interp.problems.Problem` the library's CIE code needs, over one `CheckBatch`."""

    def __init__(self, model, batch: CheckBatch):
        from interp.problems import Problem

        self.model, self.batch_ = model, batch
        self._problem = type("CheckProblem", (Problem,), {
            "_make_batch": lambda s, setting, split, n, seed: batch.select(range(min(n or len(batch), len(batch)))),
            "loss": lambda s, out, t: _loss(out, t),
            "row_metric": lambda s, out, t: out[:, 0],
            "cie_quantity": lambda s, out, t: self.quantity(out, t),
            "result": lambda s, *a, **k: None,
        })()  # fmt: skip
        self._problem.model = model

    @staticmethod
    def quantity(out: Tensor, targets: Tensor) -> Tensor:
        if out.shape[-1] == 1:
            return -((out[:, 0].float() - targets.float()) ** 2)
        return out.float().softmax(-1).gather(1, targets[:, None]).squeeze(1)


def check_model(
    model, *, n_prompts: int = 3, length: int = 12, seed: int = 0, cie_heads: int = 3,
    progress: Callable[[str], None] | None = None, reference=None,
) -> list[Check]:  # fmt: skip
    """Run every check of the module docstring on ``model``; raises `UnsupportedModelError` if refused.

    For a 16-bit ``model`` each reference also runs on ``reference``, a float32 copy of it (made with
    `float32_reference` unless given; it must hold the same weights, upcast).
    """
    from interp.activations import head_activations, stacked_b_O
    from interp.engine import FrozenPrefix, final_logits, refuse_unsupported
    from interp.interventions import add_vectors, patch_head
    from interp.vectors.function_vector import causal_indirect_effects

    refuse_unsupported(model)
    say = progress or (lambda s: None)
    dtype = model_dtype(model)
    sixteen = is_16bit(dtype)
    rtol = RTOL.get(dtype, 1e-2)
    batch = check_batch(model, n_prompts, length, seed)
    checks: list[Check] = []
    L = model.cfg.n_layers
    ref_model = None
    if sixteen:
        say("float32 reference copy")
        ref_model = reference if reference is not None else float32_reference(model)

    def judge(name: str, fast: Tensor, ref: Tensor, ref32: Callable[[], Tensor], note: str = "", floor: float = 1.0,
              factor: float = FACTOR_16BIT) -> Check:  # fmt: skip
        if ref_model is None:
            return _compare(name, fast, ref, rtol, note, floor)
        return _compare_16bit(name, fast, ref, ref32(), dtype, note, floor, factor)

    def vec(t: Tensor, on) -> Tensor:
        """A value in the checked model's dtype, as the model ``on`` receives it (same numbers, its dtype)."""
        return t.to(dtype).to(_device(on), model_dtype(on))

    with torch.no_grad():
        say("final logits")
        ref = model(batch.inputs, attention_mask=batch.attention_mask)[:, -1]
        full = final_logits(model, batch.inputs, batch.attention_mask)
        checks.append(judge("final_logits", full, ref,
                            lambda: ref_model(batch.inputs, attention_mask=batch.attention_mask)[:, -1]))  # fmt: skip
        if full.shape[-1] > 1:
            # Targets the model actually predicts, so P(target) and the CIEs are far from zero (not vacuous).
            batch.target_ids = full.argmax(-1)
        say("left padding")
        alone = torch.cat([model(batch.row(i)[0])[:, -1] for i in range(len(batch))])
        checks.append(judge("left_padding", full, alone,
                            lambda: torch.cat([ref_model(batch.row(i)[0])[:, -1] for i in range(len(batch))]),
                            "padded rows vs each prompt alone"))  # fmt: skip

    say("head identity")
    acts = head_activations(model, batch.inputs, batch.attention_mask)
    summed = acts.contributions.sum(2) + stacked_b_O(model).to(
        acts.contributions.dtype
    )  # [batch, L, d_model]
    post_norm = bool(getattr(model.cfg, "use_normalization_before_and_after", False))
    checks.append(judge("head_identity", summed, _attn_outputs(model, batch), lambda: _attn_outputs(ref_model, batch),
                        "before the post-attention norm (ln1_post)" if post_norm else ""))  # fmt: skip

    say("frozen-prefix engine")
    prefix = FrozenPrefix.from_batch(model, batch.inputs, batch.attention_mask)
    with torch.no_grad():
        hooks32 = _interventions(ref_model, len(batch), seed, value_dtype=dtype) if ref_model is not None else {}
        for name, hooks in _interventions(model, len(batch), seed).items():
            checks.append(judge(f"engine_{name}", prefix.run(hooks),
                                final_logits(model, batch.inputs, batch.attention_mask, hooks),
                                lambda n=name: final_logits(ref_model, batch.inputs, batch.attention_mask, hooks32[n])))  # fmt: skip

        say("run_from")
        # Every start layer, judged as one check over the stacked outputs [layer, batch, out]: in 16-bit the
        # worst of L separate ratios would be the maximum of L noisy draws, the error over all layers is one.
        resid_pre, _ = prefix.final_resid_pre()
        gen = torch.Generator(device="cpu").manual_seed(seed + 7)
        fast_l, ref_l, ref32_l = [], [], []
        for layer in range(L):
            v = torch.randn(model.cfg.d_model, generator=gen, device="cpu")
            hooks = add_vectors(model, {layer: vec(v, model)})
            fast_l.append(prefix.run_from(layer, resid_pre[:, layer], hooks))
            ref_l.append(final_logits(model, batch.inputs, batch.attention_mask, hooks))
            if ref_model is not None:
                ref32_l.append(final_logits(ref_model, batch.inputs, batch.attention_mask,
                                            add_vectors(ref_model, {layer: vec(v, ref_model)})))  # fmt: skip
        fast_s, ref_s = torch.stack(fast_l), torch.stack(ref_l)
        per_layer = (fast_s.double() - (torch.stack(ref32_l) if ref32_l else ref_s).double().to(fast_s.device)).abs()
        worst_layer = int(per_layer.flatten(1).max(1).values.argmax())
        checks.append(judge("run_from", fast_s, ref_s, lambda: torch.stack(ref32_l),
                            f"start layers 0..{L - 1}, each with an addition at that layer; worst at layer "
                            f"{worst_layer}"))  # fmt: skip

    say("LTV gradient")
    a_mean = acts.mean_contributions.float()

    def ltv_grad(m, run) -> tuple[Tensor, Tensor]:
        theta = torch.full(a_mean.shape[:2], 0.1, device=_device(m), requires_grad=True)
        out = run(add_vectors(m, torch.einsum("lh,lhm->lm", theta, a_mean.to(_device(m)))))
        loss = _loss(out, batch.target_ids.to(out.device))
        (grad,) = torch.autograd.grad(loss, theta)
        return grad, loss.detach()

    g_fast, _ = ltv_grad(model, prefix.run)
    g_ref, loss = ltv_grad(model, lambda h: final_logits(model, batch.inputs, batch.attention_mask, h))
    checks.append(judge("ltv_gradient", g_fast, g_ref,
                        lambda: ltv_grad(ref_model, lambda h: final_logits(ref_model, batch.inputs,
                                                                             batch.attention_mask, h))[0],
                        f"loss {loss.item():.4g}", floor=1e-3, factor=FACTOR_16BIT_DERIVED))  # fmt: skip

    say("causal indirect effects")
    problem = _CheckProblem(model, batch)
    cie = causal_indirect_effects(problem._problem, acts.mean_z, len(batch), setting="check", progress=False)
    heads = _cie_heads(model, cie_heads)

    def full_cie(m) -> tuple[Tensor, Tensor]:
        """One full forward per patched head on ``m``: the CIEs and the clean P(target)."""
        targets = batch.target_ids.to(_device(m))
        with torch.no_grad():
            clean = _CheckProblem.quantity(final_logits(m, batch.inputs, batch.attention_mask), targets)
            out = []
            for layer, head in heads:
                logits = final_logits(m, batch.inputs, batch.attention_mask,
                                      patch_head(m, layer, head, vec(acts.mean_z[layer, head], m)))  # fmt: skip
                out.append((_CheckProblem.quantity(logits, targets) - clean).mean())
        return torch.stack(out), clean

    ref_cie, clean = full_cie(model)
    fast = torch.stack([cie[l, h] for l, h in heads])
    # A CIE is a difference of two P(target)s, each off by ~ P * (rounding of the logits): its tolerance
    # scales with P(target) * max|logit|, not with the (possibly tiny) difference.
    logit_scale = max(1.0, ref.abs().max().item()) if ref.shape[-1] > 1 else 1.0
    # In 16-bit the float32 reference measures the logits' rounding itself; the floor is one ulp of P(target).
    floor = max(1e-3, clean.abs().max().item() * (logit_scale if ref_model is None else 1.0))
    checks.append(judge("cie", fast, ref_cie, lambda: full_cie(ref_model)[0],
                        f"heads {', '.join(f'L{l}H{h}' for l, h in heads)}", floor=floor,
                        factor=FACTOR_16BIT_DERIVED))  # fmt: skip
    model.zero_grad(set_to_none=True)
    return checks


def criterion(dtype: torch.dtype) -> str:
    """How checks in ``dtype`` are judged, in one line (printed and put in the JSON)."""
    if is_16bit(dtype):
        return (f"against a float32 copy of the model: |fast - f32| <= {FACTOR_16BIT:g} x |16-bit reference - f32| "
                f"({FACTOR_16BIT_DERIVED:g} x for gradients and CIEs) + 1 ulp ({ULP[dtype]:.3g}), max and mean")  # fmt: skip
    return f"|fast - reference| <= {RTOL.get(dtype, 1e-2):g} x max(1, |reference|)"


def summarise(checks: Sequence[Check]) -> dict:
    return {
        "checks": {c.name: c.to_dict() for c in checks},
        "passed": sum(c.passed for c in checks),
        "failed": sum(not c.passed for c in checks),
    }


def _failure(c: Check) -> str:
    if c.fast_err is None:
        return f"{c.name}: {c.max_abs_diff:.3g} > {c.tol:.3g}"
    return (f"{c.name}: error vs float32 {c.fast_err:.3g} (mean {c.fast_err_mean:.3g}) > bound {c.tol:.3g} "
            f"(mean {c.mean_tol:.3g}); the 16-bit reference's {c.ref_err:.3g} (mean {c.ref_err_mean:.3g})")  # fmt: skip


def check_families(
    families: Sequence[str] | None = None, *, dtype: torch.dtype = torch.float32, device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:  # fmt: skip
    """`check_model` on the tiny random model of every family; a refusal is reported, not raised.

    Per family: ``max_abs_diff`` (the direct difference per check) and, in 16-bit, ``errors`` (per check the
    shortcut's and the 16-bit reference's max error against the float32 copy) and ``worst_ratio`` (the largest
    measured error / its bound; < 1 passes)."""
    from interp.engine import UnsupportedModelError
    from interp.families import FAMILIES, build_family

    say = progress or (lambda s: None)
    out: dict[str, dict] = {}
    for name in families or list(FAMILIES):
        t0, c0 = time.perf_counter(), time.process_time()
        record: dict[str, Any] = {"features": FAMILIES[name].features if name in FAMILIES else None}
        try:
            model = build_family(name, dtype=dtype, device=device or "cpu")
            checks = check_model(model)
        except UnsupportedModelError as err:
            record.update(status="unsupported", max_abs_diff={}, reason=str(err))
        except Exception as err:  # a crash is a failure of the family, reported with its message
            record.update(status="fail", max_abs_diff={}, reason=f"{type(err).__name__}: {str(err)[:300]}")
        else:
            failed = [c for c in checks if not c.passed]
            record.update(
                status="fail" if failed else "pass",
                max_abs_diff={c.name: c.max_abs_diff for c in checks},
                reason="; ".join(_failure(c) for c in failed) or None,
                worst_ratio=max((c.measured / c.tol if c.tol else math.inf) for c in checks),
            )
            if is_16bit(dtype):
                record["errors"] = {c.name: {"fast": c.fast_err, "ref": c.ref_err, "fast_mean": c.fast_err_mean,
                                             "ref_mean": c.ref_err_mean} for c in checks}  # fmt: skip
        record["seconds"] = round(time.perf_counter() - t0, 2)
        record["cpu_seconds"] = round(time.process_time() - c0, 2)  # meaningful on a shared machine
        say(f"{name}: {record['status']}")
        out[name] = record
    return {
        "families": out,
        "passed": sum(r["status"] == "pass" for r in out.values()),
        "failed": sum(r["status"] == "fail" for r in out.values()),
        "unsupported": sum(r["status"] == "unsupported" for r in out.values()),
        "dtype": str(dtype).replace("torch.", ""),
        "criterion": criterion(dtype),
    }


def format_checks(checks: Sequence[Check]) -> str:
    if not any(c.fast_err is not None for c in checks):
        lines = [f"{'check':<22}{'max |diff|':>12}{'max |ref|':>12}{'tolerance':>12}  result"]
        for c in checks:
            lines.append(f"{c.name:<22}{c.max_abs_diff:>12.3g}{c.scale:>12.3g}{c.tol:>12.3g}  {'ok' if c.passed else 'FAIL'}"
                         + (f"  ({c.note})" if c.note else ""))  # fmt: skip
        return "\n".join(lines)
    # 16-bit: each path's error against the float32 copy (max / mean), the bound on the shortcut's
    lines = [f"{'check':<22}{'|fast-ref|':>11}{'fast vs f32':>20}{'ref vs f32':>20}{'bound':>20}  result",
             f"{'':<22}{'max':>11}{'max / mean':>20}{'max / mean':>20}{'max / mean':>20}"]  # fmt: skip
    for c in checks:
        lines.append(
            f"{c.name:<22}{c.max_abs_diff:>11.3g}{f'{c.fast_err:.3g} / {c.fast_err_mean:.3g}':>20}"
            f"{f'{c.ref_err:.3g} / {c.ref_err_mean:.3g}':>20}{f'{c.tol:.3g} / {c.mean_tol:.3g}':>20}"
            f"  {'ok' if c.passed else 'FAIL'}" + (f"  ({c.note})" if c.note else "")
        )
    return "\n".join(lines)


def format_families(report: dict) -> str:
    lines = [f"{'family':<13}{'status':<13}{'worst |diff|':>13}{'worst/bound':>12}  reason / features"]
    for name, r in report["families"].items():
        worst = max(r["max_abs_diff"].values()) if r["max_abs_diff"] else float("nan")
        ratio = r.get("worst_ratio", float("nan"))
        lines.append(f"{name:<13}{r['status']:<13}{worst:>13.3g}{ratio:>12.2f}  {r['reason'] or r['features']}")
    lines.append(f"{report['passed']} passed, {report['failed']} failed, {report['unsupported']} refused "
                 f"({report['dtype']}; {report['criterion']})")  # fmt: skip
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------


def cmd_check(args) -> int:
    """``interp check --model M`` / ``interp check --families``: exit 1 if any check fails (or M is refused)."""
    import json
    import sys

    from interp.engine import UnsupportedModelError
    from interp.models import load_model, parse_dtype

    def say(msg: str) -> None:
        print(f"[check] {msg}", file=sys.stderr, flush=True)

    dtype = parse_dtype(args.dtype)
    if args.families or args.family:
        report = check_families(
            args.family or None, dtype=dtype or torch.float32, device=args.device, progress=say
        )
        print(json.dumps(report) if args.json else format_families(report))
        return 1 if report["failed"] else 0
    model = load_model(args.model, device=args.device, dtype=dtype, verbose=not args.json)
    record: dict[str, Any] = {
        "model": args.model,
        "device": str(_device(model)),
        "dtype": str(model_dtype(model)).replace("torch.", ""),
        "criterion": criterion(model_dtype(model)),
    }
    try:
        checks = check_model(model, n_prompts=args.n_prompts, progress=say)
    except UnsupportedModelError as err:
        record.update(status="unsupported", reason=str(err), checks={}, passed=0, failed=0)
        print(json.dumps(record) if args.json else f"{args.model}: refused: {err}")
        return 1
    record.update(summarise(checks))
    record["status"] = "fail" if record["failed"] else "pass"
    if args.json:
        print(json.dumps(record))
    else:
        print(f"{args.model} on {record['device']} in {record['dtype']} (judged {record['criterion']})")
        print(format_checks(checks))
        print(f"{record['passed']} passed, {record['failed']} failed")
    return 1 if record["failed"] else 0
