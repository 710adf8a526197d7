"""Learned Task Vectors (Saglam et al. 2025): a learned weighting of attention heads, per layer.

With ``ā[l, h]`` the mean contribution of head ``(l, h)`` at the final token over clean k-shot prompts
(``z @ W_O[l, h]``, see `interp.activations`), and weights ``θ ∈ R^{L×H}``, the LTV adds

    v_l = Σ_h θ[l, h] · ā[l, h]        to  blocks.{l}.hook_resid_post[:, -1]   for every layer l

of a *corrupted* prompt (shuffled labels or zero-shot). The model is frozen; θ is trained with Adam on
the loss of the true answer (first-token cross-entropy for text, Huber for regression).

How this implementation differs from the reference code (docs/design.md §2), on purpose:

- the basis is the true per-head contribution ``z @ W_O[h]``; ``basis="chunks"`` reproduces the reference's
  residual-slice basis (the summed attention output cut into H slices) for comparison only;
- ``ā`` is computed once from the *train* split, never per step;
- training prompts come from *train*, early stopping and model selection use the *valid* split's loss
  (the patience counter resets on improvement), test is only used to report;
- every step is a one-token forward/backward over a frozen prefix (`interp.engine`), in batches;
- θ starts at zero by default (the identity intervention; the gradient there is non-zero), and
  `LearnedTaskVector.random_control` gives the same-norm random-θ control reported beside it.

Training writes a checkpoint every ``checkpoint_every`` steps when given a directory and can resume
from it; Ctrl-C saves the best θ so far before stopping. A non-finite loss stops training at that step,
keeps the best θ, and records the step in the training metadata.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import einops
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.activations import stacked_b_O
from interp.engine import RaggedPrefix
from interp.interventions import add_vectors
from interp.problems import Problem, run_prefix, targets_of
from interp.vectors.base import ConfigDict, TaskVector, VectorError, describe_model


@dataclass
class LTVConfig(ConfigDict):
    """Settings of an LTV fit (defaults chosen for SmolLM2 on 2 CPU cores)."""

    corruptions: tuple[str, ...] | None = None  # None: the problem's defaults (shuffled + zero-shot for text)
    n_mean: int = 48  # clean train prompts averaged for ā
    n_train: int = 64  # corrupted train prompts per corruption (a fixed pool; prefixes computed once)
    n_valid: int = 32  # corrupted valid prompts per corruption
    steps: int = 300
    batch_size: int = 16
    lr: float = 0.05
    init: str = "zeros"  # zeros | ones | normal
    init_std: float = 1.0
    l1: float = 0.0  # L1 penalty on θ (sparser head weights)
    basis: str = "heads"  # heads | chunks (reference code's residual-slice basis; comparison only)
    layers: tuple[int, ...] | None = None  # restrict θ to these layers (None: all) - for single-layer sweeps
    heads: tuple[tuple[int, int], ...] | None = None  # restrict θ to these (layer, head)s (None: all) - sparse LTVs
    eval_every: int = 20
    patience: int = 5  # evaluations without valid-loss improvement before stopping
    checkpoint_every: int = 50
    seed: int = 0


@dataclass
class LearnedTaskVector(TaskVector):
    """θ [layer, head] and the basis ā [task, layer, head, d_model] it weights."""

    method = "ltv"

    @property
    def theta(self) -> Float[Tensor, "layer head"]:
        return self.tensors["theta"]

    @property
    def basis(self) -> Float[Tensor, "task layer head d_model"]:
        return self.tensors["basis"]

    @property
    def tasks(self) -> list[str]:
        return list(self.meta.get("tasks", []))

    def layer_vectors(self, task: str | int | None = None) -> Float[Tensor, "layer d_model"]:
        """``v_l = Σ_h θ[l, h] ā[l, h]`` for one task's basis."""
        index = self._task_index(task)
        return einops.einsum(self.theta, self.basis[index], "l h, l h m -> l m")

    def _task_index(self, task: str | int | None) -> int:
        if isinstance(task, int):
            return task
        if task is None:
            if self.basis.shape[0] != 1:
                raise VectorError(
                    f"this LTV was trained on {len(self.tasks)} tasks ({', '.join(self.tasks)}); "
                    "say which task's head means to use: .for_task(name)"
                )
            return 0
        if task not in self.tasks:
            raise VectorError(f"task {task!r} is not one of this LTV's tasks: {', '.join(self.tasks)}")
        return self.tasks.index(task)

    def for_task(self, task: str) -> "LearnedTaskVector":
        i = self._task_index(task)
        meta = {**self.meta, "tasks": [task], "task": task}
        return LearnedTaskVector({"theta": self.theta, "basis": self.basis[i : i + 1]}, meta)

    def hooks(self, model, task: str | int | None = None):
        return add_vectors(model, self.layer_vectors(task), hook="resid_post")

    def head_scores(self, task: str | int | None = None) -> Float[Tensor, "layer head"]:
        """|θ[l, h]| · ‖ā[l, h]‖: the size of what each head actually adds."""
        return self.theta.abs() * self.basis[self._task_index(task)].norm(dim=-1)

    def random_control(self, seed: int = 0) -> "LearnedTaskVector":
        """Random θ with the trained θ's Frobenius norm (and zero outside its active layers)."""
        gen = torch.Generator(device="cpu").manual_seed(seed)  # CPU draw: the same control on every device
        theta = torch.randn(self.theta.shape, generator=gen, device="cpu").to(self.theta.device)
        theta = theta * self.active_mask()
        theta = theta * self.theta.norm() / theta.norm().clamp_min(1e-12)
        meta = {**self.meta, "label": "random-θ", "random_seed": seed}
        return LearnedTaskVector({"theta": theta, "basis": self.basis}, meta)

    def active_mask(self) -> Tensor:
        """1 for the heads θ was allowed to use (its config's ``layers`` / ``heads``), else 0."""
        cfg = LTVConfig.from_dict({k: v for k, v in self.meta.get("config", {}).items() if k in LTVConfig.__dataclass_fields__})
        return active_heads(cfg, *self.theta.shape, device=self.theta.device)


def head_basis(model, problem: Problem, n_mean: int, basis: str = "heads") -> Float[Tensor, "layer head d_model"]:
    """ā over clean train prompts, in the true per-head basis or the reference's residual-chunk basis."""
    a_mean = problem.clean_activations(n_mean).mean_contributions
    if basis == "heads":
        return a_mean
    if basis == "chunks":
        # Reference code: sum of all heads' outputs (+ b_O), cut into H equal slices of the residual.
        n_layers, n_heads, d_model = a_mean.shape
        if d_model % n_heads:
            raise VectorError(f"basis='chunks' needs d_model ({d_model}) divisible by n_heads ({n_heads})")
        total = a_mean.sum(1) + stacked_b_O(model)
        chunks = torch.zeros_like(a_mean)
        width = d_model // n_heads
        for h in range(n_heads):
            chunks[:, h, h * width : (h + 1) * width] = total[:, h * width : (h + 1) * width]
        return chunks
    raise VectorError(f"unknown basis {basis!r}; use 'heads' (true per-head outputs) or 'chunks' (reference code)")


def project_onto_heads(
    vectors: Float[Tensor, "layer d_model"], basis: Float[Tensor, "layer head d_model"], meta: dict | None = None
) -> tuple["LearnedTaskVector", Float[Tensor, "layer"]]:
    """The LTV closest to a free per-layer vector: θ[l] = argmin_θ ‖Σ_h θ[l, h] ā[l, h] − v_l‖ (least squares,
    in float64), i.e. ``v_l`` projected onto the span of layer l's head means.

    Asks whether a free steering vector lives in the head basis: if its projection does what it does (ports to
    other templates, steers as well), the basis explains the behaviour; if only the part outside span(ā) does,
    it does not. Returns the projected vector as a `LearnedTaskVector` (same hooks, same place in the residual
    stream as the steering vector) and, per layer, the fraction of ‖v_l‖² the span keeps (1 where v_l = 0).
    """
    if vectors.shape[0] != basis.shape[0] or vectors.shape[-1] != basis.shape[-1]:
        raise VectorError(f"vectors {list(vectors.shape)} and basis {list(basis.shape)} disagree on layers or "
                          "d_model; project a vector onto the head basis of the same model")  # fmt: skip
    a = basis.detach().double()  # [layer, head, d]
    v = vectors.detach().double().to(a.device)
    # per layer: minimise ‖a[l]ᵀ θ − v[l]‖; lstsq handles rank-deficient bases (heads with equal means)
    theta = torch.linalg.lstsq(a.transpose(1, 2), v.unsqueeze(-1), driver="gelsd" if a.device.type == "cpu" else None).solution
    theta = theta.squeeze(-1)
    projected = einops.einsum(theta, a, "l h, l h m -> l m")
    norm2 = v.pow(2).sum(-1)
    kept = torch.where(norm2 > 0, projected.pow(2).sum(-1) / norm2.clamp_min(1e-300), torch.ones_like(norm2))
    meta = {**(meta or {}), "label": (meta or {}).get("label", "projection onto span(ā)")}
    ltv = LearnedTaskVector({"theta": theta.to(basis.dtype), "basis": basis.detach().unsqueeze(0)}, meta)
    return ltv, kept.float()


def _init_theta(cfg: LTVConfig, shape, active: Tensor) -> Float[Tensor, "layer head"]:
    """θ on ``active``'s device, always float32 (a bf16 θ would lose Adam's small updates)."""
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    if cfg.init == "zeros":
        theta = torch.zeros(shape, device="cpu")
    elif cfg.init == "ones":
        theta = torch.ones(shape, device="cpu")
    elif cfg.init == "normal":
        theta = torch.randn(shape, generator=gen, device="cpu") * cfg.init_std  # same draw on every device
    else:
        raise VectorError(f"unknown init {cfg.init!r}; use zeros, ones or normal")
    return theta.to(device=active.device, dtype=torch.float32) * active


@dataclass
class _Pool:
    """Corrupted prompts of one split from every (problem, corruption), with their frozen prefixes.

    The rows stay in their own prefixes (`RaggedPrefix`), never stacked into one padded copy: a zero-shot
    prompt is ~10x shorter than a 10-shot one, so padding every row to the longest more than doubled a
    pool, and a stacked copy sat beside the problem's cached prefixes. On ag_news (10-shot prompts of ~700
    tokens) one fit's padded pools alone came to ~6 GB on SmolLM2 and Gemma-3-270M, enough to exhaust a
    24 GB machine; unstacked, a single-task pool *is* the problem's cached prefixes (shared by every fit of
    a learning-rate grid). A minibatch pads only the rows it holds, which scores exactly as the stacked pool.
    """

    prefix: RaggedPrefix
    targets: Tensor
    task_index: Tensor  # which problem each row belongs to

    @classmethod
    def build(cls, problems: Sequence[Problem], corruptions, split: str, n: int) -> "_Pool":
        prefixes, targets, task_index = [], [], []
        for i, problem in enumerate(problems):
            for setting in corruptions:
                batch, prefix = problem.prefix(setting, split, n)
                prefixes.append(prefix)
                targets.append(targets_of(batch))
                task_index.append(torch.full((len(prefix),), i, dtype=torch.long, device=targets[-1].device))
                if len(problems) > 1:
                    # a multi-task pool holds every task's prefixes for the whole fit; counted in each task's
                    # bounded cache as well, they would make it evict what the other methods still share
                    problem.forget(setting, split, n)
        return cls(RaggedPrefix(prefixes), torch.cat(targets), torch.cat(task_index))

    def __len__(self) -> int:
        return len(self.targets)


def _row_hooks(model, theta: Tensor, basis: Tensor, task_index: Tensor):
    """Per-row layer vectors (rows may belong to different tasks, each with its own ā)."""
    vectors = einops.einsum(theta, basis[task_index], "l h, b l h m -> b l m")
    return add_vectors(model, {layer: vectors[:, layer] for layer in range(theta.shape[0])})


def _pool_loss(problem, pool: _Pool, param, make_hooks, rows_per_call=64) -> tuple[float, float]:
    with torch.no_grad():
        out = run_prefix(pool.prefix, lambda idx: make_hooks(param, pool.task_index[idx]), rows_per_call)
        return problem.loss(out, pool.targets).item(), problem.row_metric(out, pool.targets).mean().item()


def fit_ltv(
    problems: Problem | Sequence[Problem],
    config: LTVConfig | None = None,
    *,
    basis: Float[Tensor, "task layer head d_model"] | Float[Tensor, "layer head d_model"] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> LearnedTaskVector:
    """Train an LTV on one problem, or one shared θ on several (a multi-task LTV, each task with its own ā).

    ``basis`` replaces the ā of the problems' clean prompts by another set of head vectors (one per problem,
    or one shared), e.g. another task's ā or ā of random-label prompts, for controls (`analyses.science`).
    """
    cfg = config or LTVConfig()
    problems = [problems] if isinstance(problems, Problem) else list(problems)
    model = problems[0].model
    problems[0].check_corruptions(cfg.corruptions or problems[0].corruptions)
    names = [p.name for p in problems]
    if len(set(names)) != len(names):
        raise VectorError(f"a multi-task LTV got the same task twice ({', '.join(names)}); give each task once")
    if basis is None:
        # [T L H d], float32 like θ (a bf16 model's head means are upcast; the hooks cast back to the model dtype)
        basis = torch.stack([head_basis(model, p, cfg.n_mean, cfg.basis) for p in problems]).float()
    else:
        basis = basis.detach().to(device=model.cfg.device, dtype=torch.float32)
        basis = basis[None].expand(len(problems), *basis.shape) if basis.ndim == 3 else basis
        expected = (len(problems), model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_model)
        if tuple(basis.shape) != expected:
            raise VectorError(f"basis must be [task, layer, head, d_model] = {list(expected)}, got {list(basis.shape)}")
    n_layers, n_heads = basis.shape[1:3]
    active = active_heads(cfg, n_layers, n_heads, basis.device)

    def make_hooks(theta: Tensor, task_index: Tensor):
        return _row_hooks(model, theta, basis, task_index)

    def finish(best_theta: Tensor, state: dict, corruptions, t0: float) -> LearnedTaskVector:
        return _finish(problems, model, cfg, best_theta, basis, state, corruptions, t0)

    return train_final_token(
        problems, cfg, _init_theta(cfg, (n_layers, n_heads), active), make_hooks, finish,
        grad_mask=active, desc=f"LTV {problems[0].name}", checkpoint_dir=checkpoint_dir, resume=resume,
        progress=progress,
    )  # fmt: skip


def active_heads(cfg: LTVConfig, n_layers: int, n_heads: int, device: torch.device | str = "cpu") -> Tensor:
    """1 for every head θ may use (``cfg.layers`` and ``cfg.heads`` restrict it), else 0 (on ``device``)."""
    active = torch.zeros(n_layers, n_heads, device=device)
    for layer in cfg.layers if cfg.layers is not None else range(n_layers):
        if not 0 <= layer < n_layers:
            raise VectorError(f"layer {layer} out of range for a {n_layers}-layer model")
        active[layer] = 1
    if cfg.heads is not None:
        keep = torch.zeros(n_layers, n_heads, device=device)
        for layer, head in cfg.heads:
            if not (0 <= layer < n_layers and 0 <= head < n_heads):
                raise VectorError(f"head ({layer}, {head}) out of range for a {n_layers}x{n_heads}-head model")
            keep[layer, head] = 1
        active = active * keep
    if not active.any():
        raise VectorError("the layers / heads settings leave no head for θ to use; allow at least one")
    return active


def train_final_token(
    problems: Sequence[Problem],
    cfg,
    init: Tensor,
    make_hooks: Callable[[Tensor, Tensor], list],
    finish: Callable[[Tensor, dict, tuple, float], TaskVector],
    *,
    grad_mask: Tensor | None = None,
    desc: str = "train",
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
):
    """The training loop shared by every learned final-token intervention (LTV θ, free steering vectors).

    ``make_hooks(param, task_index)`` gives the hooks applying ``param`` to rows of the given tasks; only
    ``param`` learns (Adam, ``cfg.lr``; an L1 penalty ``cfg.l1``; ``grad_mask`` zeroes frozen entries).
    Minibatches of the fixed *train* pool of corrupted prompts, early stopping on the *valid* pool's loss
    with patience ``cfg.patience`` (reset on improvement), checkpoints and resume, Ctrl-C keeps the best
    parameter. ``finish(best_param, state, corruptions, t0)`` builds the returned vector. ``cfg`` needs the
    fields corruptions, n_train, n_valid, steps, batch_size, lr, l1, eval_every, patience, checkpoint_every,
    seed and ``to_dict()`` (as `LTVConfig`).
    """
    model = problems[0].model
    corruptions = problems[0].check_corruptions(cfg.corruptions or problems[0].corruptions)
    torch.manual_seed(cfg.seed)
    model.requires_grad_(False)  # frozen model: only the intervention learns (also saves parameter gradients)

    train = _Pool.build(problems, corruptions, "train", cfg.n_train)
    valid = _Pool.build(problems, corruptions, "valid", cfg.n_valid)
    if len(train) < cfg.batch_size:
        raise VectorError(f"only {len(train)} training prompts for batch size {cfg.batch_size}; lower batch_size")

    theta = init.detach().clone().to(model.cfg.device).requires_grad_()
    optimizer = torch.optim.Adam([theta], lr=cfg.lr)
    state = {"step": 0, "best_loss": math.inf, "best_step": 0, "bad_evals": 0, "curve": [], "stopped": None}
    best_theta = theta.detach().clone()
    ckpt = Path(checkpoint_dir) if checkpoint_dir else None
    if resume and ckpt is not None and (ckpt / "ltv_state.json").exists():
        theta, best_theta, state = _load_checkpoint(ckpt, theta, optimizer, cfg)

    loss_fn = problems[0].loss
    t0 = time.perf_counter()

    def evaluate(step: int) -> bool:
        """Valid loss at ``step``; keep the parameter if best. Returns True when patience runs out."""
        nonlocal best_theta
        v_loss, v_metric = _pool_loss(problems[0], valid, theta.detach(), make_hooks)
        state["curve"].append({"step": step, "valid_loss": v_loss, "valid_metric": v_metric, "train_loss": last_loss})
        if v_loss < state["best_loss"] - 1e-6:
            state.update(best_loss=v_loss, best_step=step, bad_evals=0)  # reset the patience counter
            best_theta = theta.detach().clone()
        else:
            state["bad_evals"] += 1
        return state["bad_evals"] >= cfg.patience

    last_loss = float("nan")
    bar = tqdm(total=cfg.steps, initial=state["step"], desc=desc, disable=not progress)
    try:
        if state["step"] == 0:
            evaluate(0)
        while state["step"] < cfg.steps:
            # minibatch drawn from (seed, step) alone, so a resumed run sees the same data as an unbroken one
            gen = torch.Generator(device="cpu").manual_seed(cfg.seed * 1_000_003 + state["step"])
            idx = torch.randint(len(train), (cfg.batch_size,), generator=gen, device="cpu").to(train.targets.device)
            out = train.prefix.select(idx).run(make_hooks(theta, train.task_index[idx]))
            loss = loss_fn(out, train.targets[idx])
            if cfg.l1:
                loss = loss + cfg.l1 * theta.abs().sum()
            if not torch.isfinite(loss):
                state["stopped"] = f"non-finite loss at step {state['step'] + 1}; kept θ of step {state['best_step']}"
                warnings.warn(f"{desc} training stopped: {state['stopped']}")
                break
            optimizer.zero_grad()
            loss.backward()
            if grad_mask is not None:
                theta.grad *= grad_mask  # frozen entries (inactive layers / heads) stay at their init
            optimizer.step()
            state["step"] += 1
            last_loss = loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.3f}", best=f"{state['best_loss']:.3f}")
            if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps:
                if evaluate(state["step"]):
                    state["stopped"] = f"early stop at step {state['step']} (best valid loss at step {state['best_step']})"
                    break
            if ckpt is not None and state["step"] % cfg.checkpoint_every == 0:
                _save_checkpoint(ckpt, theta, best_theta, optimizer, state, cfg)
    except KeyboardInterrupt:
        state["stopped"] = f"interrupted at step {state['step']}; kept θ of step {state['best_step']}"
        if ckpt is not None:
            _save_checkpoint(ckpt, theta, best_theta, optimizer, state, cfg)
            finish(best_theta, state, corruptions, t0).save(ckpt)
        raise
    finally:
        bar.close()
    vector = finish(best_theta, state, corruptions, t0)
    if ckpt is not None:
        _save_checkpoint(ckpt, theta, best_theta, optimizer, state, cfg)
    return vector


def _finish(problems, model, cfg, best_theta, basis, state, corruptions, t0) -> LearnedTaskVector:
    names = [p.name for p in problems]
    meta = {
        **describe_model(model),
        "label": "LTV" if len(problems) == 1 else "LTV (multi-task)",
        "task": names[0] if len(names) == 1 else "+".join(names),
        "tasks": names,
        "problem": problems[0].describe(),
        "layers": list(cfg.layers) if cfg.layers is not None else list(range(best_theta.shape[0])),
        "hook_names": [f"blocks.{l}.hook_resid_post" for l in range(best_theta.shape[0])],
        "corruptions": list(corruptions),
        "config": cfg.to_dict(),
        "training": {
            "steps_run": state["step"],
            "best_step": state["best_step"],
            "best_valid_loss": state["best_loss"],
            "stopped": state["stopped"],
            "wall_s": round(time.perf_counter() - t0, 2),
            "curve": state["curve"],
        },
    }
    return LearnedTaskVector({"theta": best_theta.detach().clone(), "basis": basis.detach().clone()}, meta)


def _save_checkpoint(path: Path, theta, best_theta, optimizer, state, cfg) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    opt = optimizer.state.get(theta, {})
    tensors = {"theta": theta.detach(), "best_theta": best_theta}
    for key in ("exp_avg", "exp_avg_sq"):
        if key in opt:
            tensors[key] = opt[key]
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path / "ltv_state.safetensors.tmp"))
    (path / "ltv_state.safetensors.tmp").replace(path / "ltv_state.safetensors")
    record = {**state, "adam_step": float(opt["step"]) if "step" in opt else 0.0, "config": cfg.to_dict()}
    (path / "ltv_state.json.tmp").write_text(json.dumps(record, indent=1))
    (path / "ltv_state.json.tmp").replace(path / "ltv_state.json")


def _load_checkpoint(path: Path, theta, optimizer, cfg):
    from safetensors.torch import load_file

    try:
        record = json.loads((path / "ltv_state.json").read_text())
        record["config"], record["step"]  # noqa: B018  (a state without them is not ours)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise VectorError(
            f"{path / 'ltv_state.json'} is truncated or corrupt ({type(err).__name__}: {err}); delete it to start "
            "over, or fit without --resume into a new --out directory"
        ) from None
    if record["config"] != cfg.to_dict():
        raise VectorError(
            f"the checkpoint in {path} was written with a different LTV config; "
            "resume with the same settings or choose a new --out directory"
        )
    tensors = load_file(str(path / "ltv_state.safetensors"), device=str(theta.device))
    with torch.no_grad():
        theta.copy_(tensors["theta"])
    if "exp_avg" in tensors:
        optimizer.state[theta] = {
            "step": torch.tensor(record["adam_step"], device="cpu"),  # Adam keeps its step count on the CPU
            "exp_avg": tensors["exp_avg"],
            "exp_avg_sq": tensors["exp_avg_sq"],
        }
    state = {k: record[k] for k in ("step", "best_loss", "best_step", "bad_evals", "curve", "stopped")}
    state["stopped"] = None
    return theta, tensors["best_theta"], state
