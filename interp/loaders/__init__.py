"""The registry of model loaders that `interp.models.load_model` consults.

Why a registry. ``load_model(name)`` accepts very different names: ``"smollm2-135m"``, ``"random:llama-3-8b"``,
a folder, a ``.gguf`` file, ``"regression:linear"``, any TransformerLens name. Each kind is one *loader*: a
function from a `LoadRequest` to a ``HookedTransformer``, registered under an exact name (with aliases), a
prefix ending in ``":"``, and/or a predicate on the name. Code that knows a kind of model registers it where
it lives: `interp.models` registers the built-in language models, `interp.regression` registers
``regression:<class>`` and its checkpoint folders. So model loading never imports the packages that use it,
and a new kind of model is one ``register_loader`` call::

    from interp.loaders import register_loader

    def load_mine(request):          # request.spec is the text after the prefix
        return build_my_model(request.spec, device=request.device, dtype=request.dtype)

    register_loader("mine:", load_mine, description="mine:<size>  my models", offline=True)

Resolution order: exact names (and aliases), then prefixes (longest first), then predicates in the order they
were registered, then fallbacks (TransformerLens's own names). This module is the bottom of the import graph:
it imports nothing from ``interp``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any


@dataclass(frozen=True)
class LoadRequest:
    """What a loader is asked for.

    ``name`` is the name as the user wrote it; ``spec`` is what follows a registered prefix (``"linear"`` of
    ``"regression:linear"``), else ``name``. ``dtype`` is resolved (the device's default when none was asked
    for); ``asked_dtype`` is what the user asked for, or None (regression models stay float32 unless asked).
    """

    name: str
    spec: str
    device: Any  # torch.device
    dtype: Any  # torch.dtype
    asked_dtype: Any = None
    process_weights: bool = False
    verbose: bool = True
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Loader:
    """One registered kind of model (see `register_loader`)."""

    key: str | None  # exact name (lower case), a prefix ending in ":", or None (predicate only)
    load: Callable[[LoadRequest], Any]
    matches: Callable[[str], bool] | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()
    offline: bool = False
    fallback: bool = False

    @property
    def is_prefix(self) -> bool:
        return bool(self.key) and self.key.endswith(":")


_LOADERS: list[Loader] = []


def register_loader(
    name_or_prefix: str | None,
    loader: Callable[[LoadRequest], Any],
    *,
    matches: Callable[[str], bool] | None = None,
    description: str = "",
    aliases: tuple[str, ...] = (),
    offline: bool = False,
    fallback: bool = False,
) -> Loader:
    """Register ``loader`` for an exact name, a prefix (``"random:"``), and/or names ``matches`` accepts.

    Args:
        name_or_prefix: the name (case-insensitive) or a prefix ending in ``":"``; None for a predicate only.
        loader: ``loader(request: LoadRequest) -> HookedTransformer``; keep heavy imports inside it.
        matches: an extra predicate on the raw name (a checkpoint folder, a file suffix); the request's
            ``spec`` is then the whole name.
        description: one line for error messages and listings (``"smollm2-135m  SmolLM2-135M-Instruct ..."``).
        aliases: more exact names for the same loader.
        offline: whether it loads without network access (listed when a name is unknown).
        fallback: tried only after every other loader (TransformerLens's names).

    Registering the same key again replaces the earlier loader (a re-imported module does not duplicate it).
    """
    if name_or_prefix is None and matches is None:
        raise ValueError("register_loader needs a name, a prefix or a matches predicate")
    key = name_or_prefix.lower() if name_or_prefix else None
    entry = Loader(key, loader, matches, description, tuple(a.lower() for a in aliases), offline, fallback)
    if key is not None:
        _LOADERS[:] = [item for item in _LOADERS if item.key != key]
    else:
        # a predicate-only loader is identified by its function (module reloads re-register it)
        _LOADERS[:] = [item for item in _LOADERS if not (item.key is None and _same_function(item.load, loader))]
    _LOADERS.append(entry)
    return entry


def _same_function(a: Callable, b: Callable) -> bool:
    return getattr(a, "__module__", None) == getattr(b, "__module__", None) and getattr(
        a, "__qualname__", None
    ) == getattr(b, "__qualname__", None)


def registered_loaders() -> list[Loader]:
    """Every registered loader, in registration order."""
    return list(_LOADERS)


def find_loader(name: str) -> tuple[Loader, str] | None:
    """The loader for ``name`` and the spec to hand it, or None (see the module docstring for the order)."""
    key = name.lower()
    for item in _LOADERS:
        if item.key is not None and not item.is_prefix and (key == item.key or key in item.aliases):
            return item, name
    for item in sorted((i for i in _LOADERS if i.is_prefix), key=lambda i: -len(i.key or "")):
        if key.startswith(item.key):  # type: ignore[arg-type]
            return item, name[len(item.key) :]  # type: ignore[arg-type]
    for fallback in (False, True):
        for item in _LOADERS:
            if item.fallback == fallback and item.matches is not None and item.matches(name):
                return item, name
    return None


def offline_descriptions() -> list[str]:
    """One line per offline loader, for the unknown-model message."""
    return [item.description or item.key or "" for item in _LOADERS if item.offline]


__all__ = ["LoadRequest", "Loader", "find_loader", "offline_descriptions", "register_loader", "registered_loaders"]
