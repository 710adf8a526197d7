"""One interface for the three task-vector methods, and their artifacts on disk.

    vec = fit("ltv" | "fv" | "tv", problem, config)     # -> a TaskVector subclass
    vec.hooks(model)                                    # TransformerLens hooks that apply it at the final token
    vec.evaluate(problem, "zero-shot")                  # an interp.results.Result (test split by default)
    vec.heads()                                         # tidy per-head DataFrame (LTV: θ and |θ|·‖ā‖; FV: CIE)
    vec.save("runs/antonym-ltv");  load_vector("runs/antonym-ltv", model)

A saved vector is a directory with ``vector.safetensors`` (its tensors) and ``meta.json`` (method, model
name and fingerprint, hook names, layers, task, shots, template, split seed, config, training curve).
Loading onto a model whose fingerprint differs is an error: a vector is only meaningful in the residual
basis of the model it was fitted on.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from interp.interventions import Hook
from interp.models import model_fingerprint
from interp.problems import Problem, run_prefix, targets_of

FORMAT_VERSION = 1


class ConfigDict:
    """``to_dict`` / ``from_dict`` for dataclass configs stored in JSON metadata (lists come back as tuples)."""

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict):
        return cls(**{k: _tuples(v) for k, v in d.items()})


def _tuples(value):
    """JSON lists (possibly nested, e.g. ``heads=[[l, h], ...]``) as the tuples the configs hold."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


class VectorError(ValueError):
    """A task vector cannot be fitted, loaded or applied as asked; the message says why and the fix."""


#: method name -> vector class (filled as the subclasses are defined; see `TaskVector.__init_subclass__`)
VECTOR_TYPES: dict[str, type[TaskVector]] = {}


@dataclass
class TaskVector(ABC):
    """A fitted task representation: tensors + metadata, applied as final-token hooks."""

    tensors: dict[str, Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    method: ClassVar[str] = "?"

    def __init_subclass__(cls, **kwargs) -> None:
        # every concrete vector type registers its method name: `load_vector` finds the class from a saved
        # vector's meta.json without this module importing its subclasses (they import it)
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("method", "?") != "?":
            VECTOR_TYPES[cls.method] = cls

    @abstractmethod
    def hooks(self, model) -> list[Hook]:
        """Hooks that apply this vector at the final position of every prompt."""

    @property
    def layers(self) -> list[int]:
        return list(self.meta.get("layers", []))

    # ------------------------------------------------------------------ evaluation
    def outputs(self, problem: Problem, setting: str, split: str = "test", n: int | None = 100, seed: int = 0):
        batch, prefix = problem.prefix(setting, split, n, seed)
        hooks = self.hooks(problem.model)
        return batch, run_prefix(prefix, lambda idx: hooks)

    def evaluate(
        self, problem: Problem, setting: str, split: str = "test", n: int | None = 100, seed: int = 0,
        label: str | None = None,
    ):  # fmt: skip
        """Score the vector on ``problem`` in ``setting`` (``zero-shot`` / ``shuffled`` / ...): an
        `interp.results.Result`, on exactly the prompts ``interp.evaluate(problem, "none", setting, ...)``
        scores the bare model on."""
        vec = self
        if hasattr(vec, "for_task") and len(getattr(vec, "tasks", [])) > 1:
            vec = vec.for_task(problem.name)  # a multi-task LTV: this task's own vector
        vec.check_applicable(problem)
        return problem.score(setting, vec.hooks(problem.model), split=split, n=n, seed=seed,
                             label=label or vec.label, meta={"vector": vec.summary()})  # fmt: skip

    def check_applicable(self, problem: Problem) -> None:
        """Refuse a problem whose model has another shape than the one this vector was fitted on."""
        cfg = problem.model.cfg
        for key in ("n_layers", "n_heads", "d_model"):
            if key in self.meta and self.meta[key] != getattr(cfg, key):
                raise VectorError(
                    f"this {self.label} was fitted on a model with {key}={self.meta[key]}, but the problem's model "
                    f"has {key}={getattr(cfg, key)}; refit it on this model"
                )

    def heads(self):
        """Per-head tidy DataFrame (one row per layer × head, and per task for a multi-task LTV).

        LTV: ``theta`` (θ[l, h]), ``mean_norm`` (‖ā[l, h]‖), ``score`` (|θ|·‖ā‖, the size of what the head adds);
        FV: ``cie`` (causal indirect effect), ``mean_norm``, ``in_vector`` (one of the top-k heads).

        >>> import interp, torch
        >>> vec = interp.vectors.LearnedTaskVector({"theta": torch.tensor([[1.0, -2.0]]),
        ...                                         "basis": torch.ones(1, 1, 2, 4)}, {"task": "t"})
        >>> vec.heads()[["layer", "head", "theta", "score"]].values.tolist()
        [[0.0, 0.0, 1.0, 2.0], [0.0, 1.0, -2.0, 4.0]]
        """
        import pandas as pd

        def frame(columns: dict[str, Tensor], **const) -> pd.DataFrame:
            first = next(iter(columns.values()))
            layers, heads = torch.meshgrid(torch.arange(first.shape[0]), torch.arange(first.shape[1]), indexing="ij")
            data = {"layer": layers.flatten().numpy(), "head": heads.flatten().numpy()}
            data.update({k: v.detach().float().cpu().flatten().numpy() for k, v in columns.items()})
            return pd.DataFrame(data).assign(**const)

        if "theta" in self.tensors:
            theta, basis = self.tensors["theta"], self.tensors["basis"]
            tasks = list(self.meta.get("tasks") or [self.meta.get("task", "?")])
            parts = []
            for i in range(basis.shape[0]):
                norm = basis[i].norm(dim=-1)
                parts.append(frame({"theta": theta, "mean_norm": norm, "score": theta.abs() * norm},
                                   task=tasks[i] if i < len(tasks) else str(i)))  # fmt: skip
            return pd.concat(parts, ignore_index=True)
        if "cie" in self.tensors:
            in_vector = torch.zeros_like(self.tensors["cie"], dtype=torch.bool)
            for layer, head in self.meta.get("top_heads", []):
                in_vector[layer, head] = True
            norm = self.tensors["head_means"].norm(dim=-1)
            df = frame({"cie": self.tensors["cie"], "mean_norm": norm}, task=self.meta.get("task", "?"))
            return df.assign(in_vector=in_vector.flatten().numpy())
        raise VectorError(f"a {self.label} is not a weighting of heads (it is one layer's hidden state); it has no .heads()")

    def valid_metric(self, problem: Problem, settings, n: int, hooks=None) -> float:
        """Mean reported metric over the valid split's corrupted prompts (for sweeps / selection)."""
        values = []
        for setting in settings:
            batch, prefix = problem.prefix(setting, "valid", n)
            h = self.hooks(problem.model) if hooks is None else hooks
            out = run_prefix(prefix, lambda idx: h)
            values.append(problem.row_metric(out, targets_of(batch)).mean().item())
        return sum(values) / len(values)

    @property
    def label(self) -> str:
        return self.meta.get("label", self.method)

    def summary(self) -> dict:
        keep = ("method", "task", "layers", "model_name", "label")
        return {k: self.meta[k] for k in keep if k in self.meta}

    # ------------------------------------------------------------------ artifacts
    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.tensors.items()}
        # write both files atomically so an interrupted save never leaves a half-written vector
        tmp = path / "vector.safetensors.tmp"
        save_file(tensors, str(tmp), metadata={"method": self.method})
        tmp.replace(path / "vector.safetensors")
        meta = {"format_version": FORMAT_VERSION, "method": self.method, **self.meta}
        (path / "meta.json.tmp").write_text(json.dumps(meta, indent=1, default=_json_default))
        (path / "meta.json.tmp").replace(path / "meta.json")
        return path


def _json_default(obj):
    if isinstance(obj, Tensor):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def describe_model(model) -> dict:
    return {
        "model_name": model.cfg.model_name,
        "model_fingerprint": model_fingerprint(model),
        "n_layers": model.cfg.n_layers,
        "n_heads": model.cfg.n_heads,
        "d_model": model.cfg.d_model,
    }


def load_vector(path: str | Path, model=None) -> TaskVector:
    """Load a saved vector; with ``model``, refuse one fitted on a different model."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta_path, tensor_path = path / "meta.json", path / "vector.safetensors"
    if not path.is_dir() or not meta_path.exists() or not tensor_path.exists():
        raise VectorError(
            f"no task vector at {path}: expected a directory with meta.json and vector.safetensors "
            "(written by `interp fit ... --out DIR` or TaskVector.save)"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise VectorError(f"{meta_path} is truncated or corrupt ({err}); refit the vector") from None
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise VectorError(f"{tensor_path} is truncated or corrupt ({err}); refit the vector") from None
    method = meta.pop("method", None)
    meta.pop("format_version", None)
    if method not in VECTOR_TYPES:
        raise VectorError(f"{meta_path} names method {method!r}; known methods: {', '.join(VECTOR_TYPES)}")
    if model is not None:
        expected = model_fingerprint(model)
        if meta.get("model_fingerprint") != expected:
            raise VectorError(
                f"the vector at {path} was fitted on model {meta.get('model_name')!r} "
                f"(fingerprint {meta.get('model_fingerprint')}), not on this {model.cfg.model_name!r} "
                f"(fingerprint {expected}); refit it on this model"
            )
        # safetensors loads onto the CPU: a vector for a CUDA model must live where the model does
        tensors = {name: t.to(model.cfg.device) for name, t in tensors.items()}
    return VECTOR_TYPES[method](tensors=tensors, meta=meta)
