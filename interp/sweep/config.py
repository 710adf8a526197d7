"""The sweep's configuration: one dataclass that the CLI flags and a ``--config sweep.toml`` both fill.

A sweep is the grid ``model x task x method x setting x seed`` (plus each method's options). The TOML file
holds the same field names as `SweepConfig` (method options as sub-tables ``[ltv]``, ``[fv]``, ``[tv]``, ``[ltv_multi]``; the last holds the multi-task
LTV's options, whose pools are per task):

    model = "smollm2-135m"
    tasks = ["present-past", "capitalize"]
    tasks_dir = "../shared/icl_tasks"
    methods = ["none", "icl", "ltv", "fv", "tv", "random", "ltv-multi"]
    settings = ["zero-shot", "shuffled"]
    seeds = [0, 1, 2]
    n = 100
    [ltv]
    steps = 200
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from interp.vectors import FVConfig, LTVConfig, SteeringConfig, TVConfig

#: what each method name computes (one cell per task x setting x seed unless noted)
METHODS: dict[str, str] = {
    "none": "the bare model on the corrupted prompt",
    "icl": "clean k-shot ICL (the ceiling; one cell per task x seed, setting 'icl')",
    "ltv": "learned task vector (per-head weights, all layers), trained on the task",
    "fv": "function vector (top-k heads by causal indirect effect, one layer)",
    "tv": "task vector (a layer's mean hidden state, transplanted)",
    "random": "random-θ control: the LTV's head means with random θ of the trained θ's norm",
    "steer": "free steering vector (one d_model vector per layer): the LTV's prompts, steps and early stopping, "
             "its learning rate chosen on the valid split from `steer_lr_grid`",
    "ltv-multi": "one LTV trained on all the sweep's tasks at once, evaluated per task",
}
SETTINGS = ("zero-shot", "shuffled")


class SweepConfigError(ValueError):
    """The sweep's grid or options are invalid; the message names the field and the fix."""


def _split(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


@dataclass
class SweepConfig:
    model: str = "smollm2-135m"
    tasks: tuple[str, ...] = ("present-past", "capitalize")
    tasks_dir: str | None = None
    methods: tuple[str, ...] = ("none", "icl", "ltv", "fv", "tv", "random")
    settings: tuple[str, ...] = SETTINGS
    seeds: tuple[int, ...] = (0,)
    n: int = 100  # test queries per cell (the same queries for every seed and method)
    shots: int = 10
    template: str = "qa"
    split_seed: int = 0  # train/valid/test split; fixed across seeds so every seed scores the same test queries
    # pools smaller than the library defaults: per-cell cost is what limits a sweep on CPU (see README "Sweeps")
    ltv: LTVConfig = field(default_factory=lambda: _DEFAULTS["ltv"]())
    fv: FVConfig = field(default_factory=lambda: _DEFAULTS["fv"]())
    tv: TVConfig = field(default_factory=lambda: _DEFAULTS["tv"]())
    # the multi-task LTV's pools are per task: the full-suite sweep's 41 tasks at the single-task sizes would
    # hold ~17 GB of frozen prefixes (~4.3 MB per 10-shot prompt on SmolLM2), so it gets its own, smaller ones
    ltv_multi: LTVConfig = field(default_factory=lambda: _DEFAULTS["ltv_multi"]())
    # the free steering vector: the LTV's pools, steps and early stopping (``SteeringConfig.like``); its lr is
    # chosen on the valid split from this grid (a control that could win must get its best learning rate)
    steer: SteeringConfig = field(default_factory=lambda: _DEFAULTS["steer"]())
    steer_lr_grid: tuple[float, ...] = (0.003, 0.01, 0.03)
    # execution (not part of any cell's key)
    workers: int = 1  # Ray actors, one model each; 0 = run in this process (no Ray)
    address: str | None = None  # a Ray cluster ("auto" or "ray://host:10001"); None starts a local instance
    device: str | None = None  # None: cuda when available, else cpu
    threads: int = 1  # torch threads per worker
    # GPUs each worker reserves: 1 = one model per GPU; a fraction packs several on one GPU (0.125: 8 per GPU).
    # A 135M model's cells are launch-bound on a big GPU: on one H200, 8 processes ran 8 task-seeds at once.
    gpus_per_worker: float = 1.0
    out: str = "results/sweeps/default"

    def __post_init__(self) -> None:
        self.tasks = tuple(_split(self.tasks))
        self.methods = tuple(_split(self.methods))
        self.steer_lr_grid = tuple(float(x) for x in _split(self.steer_lr_grid))
        self.settings = tuple(_split(self.settings))
        try:
            self.seeds = tuple(int(s) for s in _split(self.seeds))
        except ValueError:
            raise SweepConfigError(f"seeds must be integers, got {self.seeds!r}") from None
        for name in _DEFAULTS:
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, _sub_config(name, value))

    def validate(self) -> SweepConfig:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise SweepConfigError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
        bad = [s for s in self.settings if s not in SETTINGS]
        if bad:
            raise SweepConfigError(f"unknown setting(s) {', '.join(bad)}; choose from {', '.join(SETTINGS)}")
        if not self.tasks:
            raise SweepConfigError("no tasks given (--tasks a,b or tasks = [...] in the config)")
        if not self.seeds:
            raise SweepConfigError("no seeds given (--seeds 0,1,2)")
        if self.n < 1 or self.shots < 2:
            raise SweepConfigError(f"need n >= 1 and shots >= 2 (the shuffled setting), got n={self.n}, shots={self.shots}")
        if self.workers < 0:
            raise SweepConfigError(f"workers must be >= 0 (0 = in-process), got {self.workers}")
        g = self.gpus_per_worker
        if not (0 < g <= 1 or (g > 1 and float(g).is_integer())):
            raise SweepConfigError(f"gpus_per_worker must be a fraction in (0, 1] (workers sharing a GPU) or a whole "
                                   f"number, got {g}")  # fmt: skip
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SweepConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SweepConfigError(f"unknown sweep option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        return cls(**d)

    @classmethod
    def from_toml(cls, path: str | Path) -> SweepConfig:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise SweepConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise SweepConfigError(f"{path} is not valid TOML ({err})") from None
        return cls.from_dict(data)


# the sweep's method defaults: pools smaller than the library's (measured: see README "Sweeps")
_DEFAULTS = {
    "ltv": lambda: LTVConfig(n_mean=32, n_train=48, n_valid=24),
    "fv": lambda: FVConfig(n_mean=32, n_cie=16, n_valid=24),
    "tv": lambda: TVConfig(n_source=24, n_valid=24),
    "ltv_multi": lambda: LTVConfig(n_mean=16, n_train=12, n_valid=6),
    "steer": lambda: SteeringConfig.like(LTVConfig(n_mean=32, n_train=48, n_valid=24)),
}


def _sub_config(name: str, values: dict):
    """A method config from a TOML table / dict, on top of the sweep's defaults for that method."""
    base = _DEFAULTS[name]()
    known = {f.name for f in fields(base)}
    unknown = set(values) - known
    if unknown:
        raise SweepConfigError(f"unknown [{name}] option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return replace(base, **values)
