"""Function classes for in-context regression (the Garg et al. 2022 setting).

An in-context regression *prompt* is a sequence of points ``(x_1, f(x_1)), ..., (x_k, f(x_k))`` drawn from
one function ``f`` that is itself drawn at random from a *function class*. A transformer trained on such
prompts has to infer ``f`` from the demonstrations to predict ``f(x_i)`` from ``x_i`` and the points before
it; nothing about ``f`` is stored in its weights.

This module draws those prompts, batched and reproducibly (every sampler takes a ``torch.Generator``):

Function classes (``FUNCTION_CLASSES``), with ``x ~ N(0, I_d)``:

- ``linear``: ``f(x) = x . w``, ``w ~ N(0, I_d)``. ``Var f(x) = |x|^2 ~ d``.
- ``sparse_linear``: as ``linear`` but only ``s = 3`` random coordinates of ``w`` are non-zero.
  ``Var f(x) ~ s``.
- ``relu_net``: ``f(x) = sqrt(2 / h) * sum_i a_i relu(W_i . x)`` with ``h = 100`` hidden units and
  ``W_i ~ N(0, I_d)``, ``a_i ~ N(0, 1)`` (exactly Garg et al.'s ``Relu2nnRegression``; equivalently output
  weights ``~ N(0, 2/h)``). Since ``E relu(z)^2 = |x|^2 / 2`` for ``z ~ N(0, |x|^2)``, ``Var f(x) = |x|^2 ~ d``,
  the same scale as ``linear``.
- ``decision_tree``: a complete binary tree of depth 4; every internal node splits on a uniformly random
  coordinate at threshold 0 (``x[c] > 0`` goes right), the 16 leaf values are ``N(0, 1)``. ``Var f(x) = 1``.

Errors are normalised by ``d`` (squared error / d), so predicting 0 scores ``Var f(x) / d``: 1 for
``linear`` and ``relu_net``, ``s/d`` = 0.6 for ``sparse_linear``, ``1/d`` = 0.2 for ``decision_tree`` (d = 5).

Evaluation shifts (``SHIFTS``), applied on top of any class:

- ``skewed``: ``x ~ N(0, S)`` with ``S = Q diag(lambda) Q^T``, ``lambda_i`` proportional to ``1 / (i + 1)``
  and normalised to ``sum lambda = d`` (same trace as the identity), ``Q`` a uniformly random rotation drawn
  per prompt (so demos and query of one prompt share it).
- ``scaled``: ``x`` multiplied by 3 (the function is unchanged, so ``y`` grows with ``x``).
- ``noisy``: ``y = f(x) + eps``, ``eps ~ N(0, 0.5^2)``, independently for every point, the function being the
  same for all points of a prompt. The ``ys`` returned are the *observed* (noisy) values; the clean values
  are ``task.functions(xs)``.

Two levels of API:

- ``sample_prompts(cls, n_prompts, n_points, n_dims, generator, shift=None) -> (xs, ys)``: fresh prompts.
- ``sample_task(cls, n_prompts, n_dims, generator, shift=None) -> RegressionTask``: draws and *fixes* one
  function (and x distribution) per prompt; ``task.sample_points(n, generator)`` then draws as many points as
  wanted from the same functions, e.g. demonstrations now and a query later (as task vectors need).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor

__all__ = [
    "SampledFunctions",
    "LinearFunctions",
    "ReluNetFunctions",
    "DecisionTreeFunctions",
    "FunctionClass",
    "LinearClass",
    "SparseLinearClass",
    "ReluNetClass",
    "DecisionTreeClass",
    "Shift",
    "RegressionTask",
    "FUNCTION_CLASSES",
    "SHIFTS",
    "get_function_class",
    "get_shift",
    "sample_task",
    "sample_prompts",
    "sample_xs",
]


# --------------------------------------------------------------------------------------------------
# Sampled functions: the parameters of one function per prompt, callable on points.
# --------------------------------------------------------------------------------------------------


class SampledFunctions(ABC):
    """A batch of ``batch`` functions ``R^d -> R``, one per prompt. Call it on ``xs [batch, k, d]``."""

    @property
    @abstractmethod
    def batch_size(self) -> int: ...

    @property
    @abstractmethod
    def n_dims(self) -> int: ...

    @abstractmethod
    def evaluate(self, xs: Float[Tensor, "batch k d"]) -> Float[Tensor, "batch k"]: ...

    def __call__(self, xs: Float[Tensor, "batch k d"]) -> Float[Tensor, "batch k"]:
        if xs.ndim != 3 or xs.shape[0] != self.batch_size or xs.shape[2] != self.n_dims:
            raise ValueError(
                f"expected xs of shape [batch={self.batch_size}, k, d={self.n_dims}], got {tuple(xs.shape)}"
            )
        return self.evaluate(xs)


@dataclass
class LinearFunctions(SampledFunctions):
    """``f_b(x) = x . w_b`` (also used for ``sparse_linear``, whose ``w`` has zeros)."""

    w: Float[Tensor, "batch d"]

    @property
    def batch_size(self) -> int:
        return self.w.shape[0]

    @property
    def n_dims(self) -> int:
        return self.w.shape[1]

    def evaluate(self, xs: Float[Tensor, "batch k d"]) -> Float[Tensor, "batch k"]:
        return torch.einsum("bkd,bd->bk", xs, self.w)


@dataclass
class ReluNetFunctions(SampledFunctions):
    """``f_b(x) = scale * sum_i a_{b,i} relu(W_{b,i} . x)``."""

    W: Float[Tensor, "batch hidden d"]
    a: Float[Tensor, "batch hidden"]
    scale: float

    @property
    def batch_size(self) -> int:
        return self.W.shape[0]

    @property
    def n_dims(self) -> int:
        return self.W.shape[2]

    def evaluate(self, xs: Float[Tensor, "batch k d"]) -> Float[Tensor, "batch k"]:
        hidden = torch.relu(torch.einsum("bkd,bhd->bkh", xs, self.W))
        return self.scale * torch.einsum("bkh,bh->bk", hidden, self.a)


@dataclass
class DecisionTreeFunctions(SampledFunctions):
    """A complete binary tree per prompt, stored heap-style (children of node ``i``: ``2i+1``, ``2i+2``).

    ``split_dims[b, i]`` is the coordinate tested at internal node ``i`` (threshold 0, ``x[c] > 0`` goes
    right); ``leaf_values[b, j]`` is the output of leaf ``j`` (left to right).
    """

    split_dims: Int[Tensor, "batch n_internal"]
    leaf_values: Float[Tensor, "batch n_leaves"]
    n_dims_: int

    @property
    def batch_size(self) -> int:
        return self.split_dims.shape[0]

    @property
    def n_dims(self) -> int:
        return self.n_dims_

    @property
    def depth(self) -> int:
        return int(round(math.log2(self.leaf_values.shape[1])))

    def evaluate(self, xs: Float[Tensor, "batch k d"]) -> Float[Tensor, "batch k"]:
        batch, k, _ = xs.shape
        node = torch.zeros(batch, k, dtype=torch.long, device=xs.device)
        for _ in range(self.depth):
            dim = torch.gather(self.split_dims, 1, node)  # [batch, k]: coordinate tested at each node
            go_right = torch.gather(xs, 2, dim.unsqueeze(-1)).squeeze(-1) > 0  # [batch, k]
            node = 2 * node + 1 + go_right.long()
        leaf = node - (2**self.depth - 1)
        return torch.gather(self.leaf_values, 1, leaf)


# --------------------------------------------------------------------------------------------------
# Function classes: distributions over functions.
# --------------------------------------------------------------------------------------------------


class FunctionClass(ABC):
    """A distribution over functions ``R^d -> R``; ``sample`` draws one function per prompt."""

    name: str = ""

    @abstractmethod
    def sample(self, n_prompts: int, n_dims: int, generator: torch.Generator) -> SampledFunctions: ...

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class LinearClass(FunctionClass):
    name = "linear"

    def sample(self, n_prompts: int, n_dims: int, generator: torch.Generator) -> LinearFunctions:
        return LinearFunctions(w=torch.randn(n_prompts, n_dims, generator=generator))


class SparseLinearClass(FunctionClass):
    name = "sparse_linear"

    def __init__(self, sparsity: int = 3):
        self.sparsity = sparsity

    def sample(self, n_prompts: int, n_dims: int, generator: torch.Generator) -> LinearFunctions:
        if self.sparsity > n_dims:
            raise ValueError(f"sparse_linear needs sparsity {self.sparsity} <= n_dims, got n_dims={n_dims}")
        w = torch.randn(n_prompts, n_dims, generator=generator)
        # A uniformly random subset of `sparsity` coordinates per prompt: the smallest ranks of random keys.
        keys = torch.rand(n_prompts, n_dims, generator=generator)
        keep = keys.argsort(dim=1).argsort(dim=1) < self.sparsity
        return LinearFunctions(w=w * keep)


class ReluNetClass(FunctionClass):
    name = "relu_net"

    def __init__(self, hidden: int = 100):
        self.hidden = hidden

    def sample(self, n_prompts: int, n_dims: int, generator: torch.Generator) -> ReluNetFunctions:
        W = torch.randn(n_prompts, self.hidden, n_dims, generator=generator)
        a = torch.randn(n_prompts, self.hidden, generator=generator)
        return ReluNetFunctions(W=W, a=a, scale=math.sqrt(2.0 / self.hidden))


class DecisionTreeClass(FunctionClass):
    name = "decision_tree"

    def __init__(self, depth: int = 4):
        self.depth = depth

    def sample(self, n_prompts: int, n_dims: int, generator: torch.Generator) -> DecisionTreeFunctions:
        split_dims = torch.randint(0, n_dims, (n_prompts, 2**self.depth - 1), generator=generator)
        leaf_values = torch.randn(n_prompts, 2**self.depth, generator=generator)
        return DecisionTreeFunctions(split_dims=split_dims, leaf_values=leaf_values, n_dims_=n_dims)


FUNCTION_CLASSES: Dict[str, FunctionClass] = {
    c.name: c for c in (LinearClass(), SparseLinearClass(), ReluNetClass(), DecisionTreeClass())
}


def get_function_class(cls: Union[str, FunctionClass]) -> FunctionClass:
    """Look up a function class by name (or pass an instance through). Unknown names raise ValueError."""
    if isinstance(cls, FunctionClass):
        return cls
    if cls not in FUNCTION_CLASSES:
        raise ValueError(f"unknown function class {cls!r}; known classes: {sorted(FUNCTION_CLASSES)}")
    return FUNCTION_CLASSES[cls]


# --------------------------------------------------------------------------------------------------
# Shifts: changes to the x distribution or to the observation noise, for evaluation.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shift:
    """An evaluation shift: ``x = scale * (Q diag(sqrt(lambda)) z)`` (skew optional), ``y = f(x) + noise``."""

    name: str
    x_scale: float = 1.0
    skew_power: Optional[float] = None  # eigenvalues proportional to 1 / (i + 1) ** power, trace d
    y_noise_std: float = 0.0


SHIFTS: Dict[str, Shift] = {
    s.name: s
    for s in (
        Shift("skewed", skew_power=1.0),
        Shift("scaled", x_scale=3.0),
        Shift("noisy", y_noise_std=0.5),
    )
}


def get_shift(shift: Union[None, str, Shift]) -> Optional[Shift]:
    """Look up a shift by name (``None`` means no shift). Unknown names raise ValueError."""
    if shift is None or isinstance(shift, Shift):
        return shift
    if shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}; known shifts: {sorted(SHIFTS)} (or None for no shift)")
    return SHIFTS[shift]


def _random_rotations(n: int, d: int, generator: torch.Generator) -> Float[Tensor, "n d d"]:
    """Haar-random orthogonal matrices: QR of a Gaussian matrix with the signs of R's diagonal fixed."""
    g = torch.randn(n, d, d, generator=generator)
    q, r = torch.linalg.qr(g)
    signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    signs[signs == 0] = 1.0
    return q * signs.unsqueeze(-2)


def skewed_transform(
    n_prompts: int, n_dims: int, generator: torch.Generator, power: float = 1.0
) -> Float[Tensor, "batch d d"]:
    """Matrices ``A = Q diag(sqrt(lambda))`` so that ``x = A z`` has covariance ``Q diag(lambda) Q^T``."""
    eig = 1.0 / torch.arange(1, n_dims + 1, dtype=torch.float32) ** power
    eig = eig * (n_dims / eig.sum())
    q = _random_rotations(n_prompts, n_dims, generator)
    return q * eig.sqrt().unsqueeze(-2)


def sample_xs(
    n_prompts: int,
    n_points: int,
    n_dims: int,
    generator: torch.Generator,
    transform: Optional[Float[Tensor, "batch d d"]] = None,
    scale: float = 1.0,
) -> Float[Tensor, "batch k d"]:
    """``x = scale * A z`` with ``z ~ N(0, I_d)`` (``A = I`` when ``transform`` is None)."""
    z = torch.randn(n_prompts, n_points, n_dims, generator=generator)
    if transform is not None:
        z = torch.einsum("bij,bkj->bki", transform, z)
    return z * scale if scale != 1.0 else z


@dataclass
class RegressionTask:
    """One fixed function (and x distribution, and y noise) per prompt, from which points can be drawn.

    Draw demonstrations and, separately, queries from the *same* functions::

        task = sample_task("linear", 64, 5, g)
        xs, ys = task.sample_points(10, g)        # demonstrations
        xq, yq = task.sample_points(1, g)         # a query from the same w
    """

    function_class: str
    functions: SampledFunctions
    shift: Optional[Shift] = None
    x_transform: Optional[Float[Tensor, "batch d d"]] = None

    @property
    def n_prompts(self) -> int:
        return self.functions.batch_size

    @property
    def n_dims(self) -> int:
        return self.functions.n_dims

    def sample_points(
        self, n_points: int, generator: torch.Generator
    ) -> Tuple[Float[Tensor, "batch k d"], Float[Tensor, "batch k"]]:
        """Draw ``n_points`` fresh ``(x, y)`` pairs per prompt; ``ys`` include the shift's noise, if any."""
        scale = self.shift.x_scale if self.shift is not None else 1.0
        xs = sample_xs(self.n_prompts, n_points, self.n_dims, generator, self.x_transform, scale)
        ys = self.functions(xs)
        if self.shift is not None and self.shift.y_noise_std > 0:
            ys = ys + self.shift.y_noise_std * torch.randn(ys.shape, generator=generator)
        return xs, ys


def sample_task(
    cls: Union[str, FunctionClass],
    n_prompts: int,
    n_dims: int,
    generator: torch.Generator,
    shift: Union[None, str, Shift] = None,
) -> RegressionTask:
    """Draw one function (and, for ``skewed``, one covariance) per prompt and fix it."""
    fc = get_function_class(cls)
    sh = get_shift(shift)
    functions = fc.sample(n_prompts, n_dims, generator)
    transform = None
    if sh is not None and sh.skew_power is not None:
        transform = skewed_transform(n_prompts, n_dims, generator, sh.skew_power)
    return RegressionTask(function_class=fc.name, functions=functions, shift=sh, x_transform=transform)


def sample_prompts(
    cls: Union[str, FunctionClass],
    n_prompts: int,
    n_points: int,
    n_dims: int,
    generator: torch.Generator,
    shift: Union[None, str, Shift] = None,
) -> Tuple[Float[Tensor, "batch k d"], Float[Tensor, "batch k"]]:
    """Fresh prompts: ``n_prompts`` functions from ``cls``, ``n_points`` points each. Returns ``(xs, ys)``."""
    task = sample_task(cls, n_prompts, n_dims, generator, shift)
    return task.sample_points(n_points, generator)
