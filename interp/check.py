"""``interp check``: verify, on *your* model, the identities every number of this toolkit rests on.

The toolkit's speed comes from shortcuts that are exact only if the model behaves as assumed: the
frozen-prefix engine (`interp.engine`) reuses the prefix's keys and values and runs only the final token;
`run_from` restarts the final token at a layer; head contributions ``z @ W_O[h]`` are assumed to sum to
the attention output. A new architecture, a new dtype or a new device can break any of them silently.
`check_model` runs each shortcut and its slow reference on a few left-padded prompts of unequal lengths
and reports the largest absolute difference against a dtype-aware tolerance:

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

Tolerances are relative: ``|a - b| <= rtol(dtype) * max(1, max|b|)`` (floor 1e-3 instead of 1 for
gradients and CIEs), with ``rtol`` 1e-4 for float32 and 4 units in the last place for bfloat16 / float16
(1.6e-2 / 2e-3; 16 for the 16-bit LTV gradient): two exact computations in 16-bit differ by rounding in a different order, an actual bug
moves logits by O(1). A model the engine cannot handle is *refused* with the
reason (`interp.engine.UnsupportedModelError`) instead of being checked.

    checks = check_model(model)                  # list[Check]
    report = check_families()                    # every tiny architecture family (interp.families)
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

# Relative tolerances: 16-bit ones are 4 units in the last place (bf16: 2^-8, fp16: 2^-11) of the largest
# reference value. Measured on SmolLM2-135M in bf16 on the CPU: engine == full recompute bit for bit,
# run_from and the head identity within 1 ulp. An engine bug moves logits by O(1), far beyond this.
RTOL = {torch.float64: 1e-8, torch.float32: 1e-4, torch.bfloat16: 4 * 2**-8, torch.float16: 4 * 2**-11}
# A 16-bit gradient goes back through every layer and the forward pass, rounding at each step, and CUDA's
# kernels sum in another order than the CPU's: on an H200 in bfloat16 the frozen-prefix and full-recompute
# gradients of three tiny families differed by 4.1-7.1 ulp of the largest gradient (every other check within 4;
# float32: all 24 families within 1e-4). 16 ulp for gradients keeps a 2x margin; a bug is off by O(100%).
GRAD_RTOL_FACTOR = {torch.bfloat16: 4, torch.float16: 4}


@dataclass
class Check:
    """One shortcut against its reference: the largest absolute difference and the tolerance it met."""

    name: str
    max_abs_diff: float
    scale: float  # max |reference|
    tol: float  # absolute tolerance applied: rtol * max(1, scale)
    passed: bool
    note: str = ""

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


def _interventions(model, rows: int, seed: int = 0) -> dict[str, list]:
    from interp.interventions import add_vectors, patch_heads, replace_resid

    cfg = model.cfg
    gen = torch.Generator(device="cpu").manual_seed(seed)
    device, dtype = _device(model), model_dtype(model)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device="cpu").to(device=device, dtype=dtype)

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
    progress: Callable[[str], None] | None = None,
) -> list[Check]:  # fmt: skip
    """Run every check of the module docstring on ``model``; raises `UnsupportedModelError` if refused."""
    from interp.activations import head_activations, stacked_b_O
    from interp.engine import FrozenPrefix, final_logits, refuse_unsupported
    from interp.interventions import add_vectors, patch_head
    from interp.vectors.function_vector import causal_indirect_effects

    refuse_unsupported(model)
    say = progress or (lambda s: None)
    rtol = RTOL.get(model_dtype(model), 1e-2)
    batch = check_batch(model, n_prompts, length, seed)
    checks: list[Check] = []
    L = model.cfg.n_layers

    with torch.no_grad():
        say("final logits")
        ref = model(batch.inputs, attention_mask=batch.attention_mask)[:, -1]
        full = final_logits(model, batch.inputs, batch.attention_mask)
        checks.append(_compare("final_logits", full, ref, rtol))
        if full.shape[-1] > 1:
            # Targets the model actually predicts, so P(target) and the CIEs are far from zero (not vacuous).
            batch.target_ids = full.argmax(-1)
        say("left padding")
        alone = torch.cat([model(batch.row(i)[0])[:, -1] for i in range(len(batch))])
        checks.append(_compare("left_padding", full, alone, rtol, "padded rows vs each prompt alone"))

    say("head identity")
    acts = head_activations(model, batch.inputs, batch.attention_mask)
    summed = acts.contributions.sum(2) + stacked_b_O(model).to(
        acts.contributions.dtype
    )  # [batch, L, d_model]
    post_norm = bool(getattr(model.cfg, "use_normalization_before_and_after", False))
    checks.append(_compare("head_identity", summed, _attn_outputs(model, batch), rtol,
                           "before the post-attention norm (ln1_post)" if post_norm else ""))  # fmt: skip

    say("frozen-prefix engine")
    prefix = FrozenPrefix.from_batch(model, batch.inputs, batch.attention_mask)
    with torch.no_grad():
        for name, hooks in _interventions(model, len(batch), seed).items():
            checks.append(_compare(f"engine_{name}", prefix.run(hooks),
                                   final_logits(model, batch.inputs, batch.attention_mask, hooks), rtol))  # fmt: skip

        say("run_from")
        resid_pre, _ = prefix.final_resid_pre()
        gen = torch.Generator(device="cpu").manual_seed(seed + 7)
        per_layer = []
        for layer in range(L):
            v = torch.randn(model.cfg.d_model, generator=gen, device="cpu").to(
                resid_pre.device, resid_pre.dtype
            )
            hooks = add_vectors(model, {layer: v})
            per_layer.append(_compare("run_from", prefix.run_from(layer, resid_pre[:, layer], hooks),
                                      final_logits(model, batch.inputs, batch.attention_mask, hooks), rtol))  # fmt: skip
        worst = max(per_layer, key=lambda c: (not c.passed, c.max_abs_diff / c.tol))
        worst.note = f"worst of start layers 0..{L - 1}, each with an addition at that layer"
        checks.append(worst)

    say("LTV gradient")
    a_mean = acts.mean_contributions.float()
    grads, losses = [], []
    for run in (prefix.run, lambda h: final_logits(model, batch.inputs, batch.attention_mask, h)):
        theta = torch.full(a_mean.shape[:2], 0.1, device=a_mean.device, requires_grad=True)
        loss = _loss(run(add_vectors(model, torch.einsum("lh,lhm->lm", theta, a_mean))), batch.target_ids)
        (grad,) = torch.autograd.grad(loss, theta)
        grads.append(grad)
        losses.append(loss.detach())
    checks.append(
        _compare("ltv_gradient", grads[0], grads[1], rtol * GRAD_RTOL_FACTOR.get(model_dtype(model), 1),
                 f"loss {losses[1].item():.4g}", floor=1e-3)  # fmt: skip
    )

    say("causal indirect effects")
    problem = _CheckProblem(model, batch)
    cie = causal_indirect_effects(problem._problem, acts.mean_z, len(batch), setting="check", progress=False)
    heads = _cie_heads(model, cie_heads)
    ref_cie = []
    with torch.no_grad():
        clean = _CheckProblem.quantity(
            final_logits(model, batch.inputs, batch.attention_mask), batch.target_ids
        )
        for layer, head in heads:
            out = final_logits(model, batch.inputs, batch.attention_mask,
                               patch_head(model, layer, head, acts.mean_z[layer, head]))  # fmt: skip
            ref_cie.append((_CheckProblem.quantity(out, batch.target_ids) - clean).mean())
    fast = torch.stack([cie[l, h] for l, h in heads])
    # A CIE is a difference of two P(target)s, each off by ~ P * (rounding of the logits): its tolerance
    # scales with P(target) * max|logit|, not with the (possibly tiny) difference.
    logit_scale = max(1.0, ref.abs().max().item()) if ref.shape[-1] > 1 else 1.0
    floor = max(1e-3, clean.abs().max().item() * logit_scale)
    checks.append(_compare("cie", fast, torch.stack(ref_cie), rtol,
                           f"heads {', '.join(f'L{l}H{h}' for l, h in heads)}", floor=floor))  # fmt: skip
    model.zero_grad(set_to_none=True)
    return checks


def summarise(checks: Sequence[Check]) -> dict:
    return {
        "checks": {c.name: c.to_dict() for c in checks},
        "passed": sum(c.passed for c in checks),
        "failed": sum(not c.passed for c in checks),
    }


def check_families(
    families: Sequence[str] | None = None, *, dtype: torch.dtype = torch.float32, device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:  # fmt: skip
    """`check_model` on the tiny random model of every family; a refusal is reported, not raised."""
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
                reason="; ".join(f"{c.name}: {c.max_abs_diff:.3g} > {c.tol:.3g}" for c in failed) or None,
            )
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
    }


def format_checks(checks: Sequence[Check]) -> str:
    lines = [f"{'check':<22}{'max |diff|':>12}{'max |ref|':>12}{'tolerance':>12}  result"]
    for c in checks:
        lines.append(f"{c.name:<22}{c.max_abs_diff:>12.3g}{c.scale:>12.3g}{c.tol:>12.3g}  {'ok' if c.passed else 'FAIL'}"
                     + (f"  ({c.note})" if c.note else ""))  # fmt: skip
    return "\n".join(lines)


def format_families(report: dict) -> str:
    lines = [f"{'family':<13}{'status':<13}{'worst |diff|':>13}  reason / features"]
    for name, r in report["families"].items():
        worst = max(r["max_abs_diff"].values()) if r["max_abs_diff"] else float("nan")
        lines.append(f"{name:<13}{r['status']:<13}{worst:>13.3g}  {r['reason'] or r['features']}")
    lines.append(f"{report['passed']} passed, {report['failed']} failed, {report['unsupported']} refused "
                 f"({report['dtype']})")  # fmt: skip
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
        print(
            f"{args.model} on {record['device']} in {record['dtype']} (rtol {RTOL.get(model_dtype(model), 1e-2)})"
        )
        print(format_checks(checks))
        print(f"{record['passed']} passed, {record['failed']} failed")
    return 1 if record["failed"] else 0
