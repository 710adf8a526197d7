"""Saving and loading regression checkpoints: ``model.safetensors`` (state dict) + ``config.json``.

``config.json`` is plain JSON::

    {"format": "interp.regression.checkpoint/1",
     "model": {...RegressionConfig...},
     "training": {...steps, seed, lr, batch size, wall time, final evaluation...},
     "versions": {"torch": ..., "transformer_lens": ...}}

(``HookedTransformerConfig.to_dict()`` holds dtypes that ``torch.load(weights_only=True)`` refuses, hence
the separate JSON.) The package ships one trained checkpoint per function class under
``interp/regression/checkpoints/<class>/``; ``load_regression_model("linear")`` loads it.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from safetensors.torch import load_file, save_file

from interp.regression.functions import FUNCTION_CLASSES
from interp.regression.model import RegressionConfig, RegressionTransformer

__all__ = [
    "CHECKPOINT_DIR",
    "FORMAT",
    "shipped_checkpoint_dir",
    "save_regression_model",
    "read_checkpoint_config",
    "load_regression_model",
    "library_versions",
]

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"
FORMAT = "interp.regression.checkpoint/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def library_versions() -> Dict[str, str]:
    versions = {"torch": torch.__version__}
    for pkg in ("transformer-lens", "safetensors"):
        try:
            versions[pkg.replace("-", "_")] = metadata.version(pkg)
        except metadata.PackageNotFoundError:  # pragma: no cover
            versions[pkg.replace("-", "_")] = "unknown"
    return versions


def shipped_checkpoint_dir(function_class: str) -> Path:
    """Directory of the checkpoint shipped in the package for a class (it may not exist yet)."""
    if function_class not in FUNCTION_CLASSES:
        raise ValueError(f"unknown function class {function_class!r}; known classes: {sorted(FUNCTION_CLASSES)}")
    return CHECKPOINT_DIR / function_class


def save_regression_model(
    model: RegressionTransformer, out_dir: Union[str, Path], training: Optional[Dict[str, Any]] = None
) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": FORMAT})
    config = {
        "format": FORMAT,
        "model": model.regression_config.to_dict(),
        "training": training or {},
        "versions": library_versions(),
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return out


def _resolve(path_or_class_name: Union[str, Path]) -> Path:
    p = Path(path_or_class_name)
    if isinstance(path_or_class_name, str) and path_or_class_name in FUNCTION_CLASSES and not p.exists():
        d = shipped_checkpoint_dir(path_or_class_name)
        if not (d / WEIGHTS_FILE).exists() or not (d / CONFIG_FILE).exists():
            raise FileNotFoundError(
                f"no shipped checkpoint for class {path_or_class_name!r} at {d}; train one with "
                f"`interp regress train --class {path_or_class_name} --out {d}`"
            )
        return d
    if p.exists():
        return p
    looks_like_name = isinstance(path_or_class_name, str) and "/" not in path_or_class_name and p.suffix == ""
    if looks_like_name:
        raise ValueError(
            f"{path_or_class_name!r} is neither a known function class nor an existing path; known classes "
            f"(shipped checkpoints): {sorted(FUNCTION_CLASSES)}; or pass a checkpoint directory"
        )
    raise FileNotFoundError(
        f"checkpoint path {str(p)!r} does not exist; pass a directory holding {WEIGHTS_FILE} and {CONFIG_FILE}, "
        f"or a class name from {sorted(FUNCTION_CLASSES)}"
    )


def read_checkpoint_config(path_or_class_name: Union[str, Path]) -> Dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint (directory, the json file itself, or a class name)."""
    d = _resolve(path_or_class_name)
    if d.is_file():
        d = d.parent
    cfg_path = d / CONFIG_FILE
    if not cfg_path.exists():
        raise FileNotFoundError(
            f"{cfg_path} is missing: a checkpoint directory needs {CONFIG_FILE} and {WEIGHTS_FILE} "
            f"(write both with save_regression_model or interp regress train)"
        )
    config = json.loads(cfg_path.read_text())
    if config.get("format") != FORMAT or "model" not in config:
        raise ValueError(f"{cfg_path} is not a regression checkpoint config (expected format {FORMAT!r})")
    return config


def load_regression_model(
    path_or_class_name: Union[str, Path],
    expected_class: Optional[str] = None,
    device: Union[str, torch.device] = "cpu",
) -> RegressionTransformer:
    """Load a checkpoint directory, or the shipped checkpoint of a class given by name (e.g. ``"linear"``).

    ``expected_class``: if given, a checkpoint trained on another function class raises ValueError.
    The model is returned in eval mode; its ``checkpoint_config`` attribute holds the parsed config.json.
    """
    if expected_class is not None and expected_class not in FUNCTION_CLASSES:
        raise ValueError(f"unknown expected_class {expected_class!r}; known classes: {sorted(FUNCTION_CLASSES)}")
    d = _resolve(path_or_class_name)
    if d.is_file():
        d = d.parent
    config = read_checkpoint_config(d)
    rcfg = RegressionConfig.from_dict(config["model"])
    if expected_class is not None and rcfg.function_class != expected_class:
        raise ValueError(
            f"checkpoint {d} was trained on {rcfg.function_class!r}, not the expected {expected_class!r}; load "
            f"load_regression_model({expected_class!r}) for the shipped one, or train one with "
            f"`interp regress train --class {expected_class} --out DIR`"
        )
    weights = d / WEIGHTS_FILE
    if not weights.exists():
        raise FileNotFoundError(
            f"{weights} is missing (config.json is there): re-save the model with save_regression_model, or "
            f"retrain with `interp regress train --class {rcfg.function_class} --out {d}`"
        )
    model = RegressionTransformer(rcfg, device=device)
    model.load_state_dict(load_file(str(weights), device=str(device)), strict=True)
    model.eval()
    model.checkpoint_config = config
    return model
