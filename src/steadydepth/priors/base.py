"""The depth-prior protocol and the registry that turns ``--prior SPEC`` into a prior.

A prior is a *stream transformer*: it consumes processed frames in order and yields
one :class:`~steadydepth.types.PriorOutput` per frame, in the same order. Per-frame
models map one to one; windowed models (DepthCrafter) and multi-view stereo keep the
few frames they need in a bounded buffer. This keeps memory flat in clip length.

A spec is ``name`` or ``name:argument`` (``files:DIR``, ``hf:MODEL``, ``onnx:FILE``);
``a+b`` combines priors (the first gives shape, the later ones geometry/scale).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ..errors import InputError
from ..types import Cameras, Frame, PriorOutput

__all__ = ["DepthPrior", "PriorContext", "register_prior", "create_prior", "available_priors"]

log = logging.getLogger(__name__)


@dataclass
class PriorContext:
    """What the pipeline knows when a prior runs.

    ``cameras`` are at the *processing* resolution (``None`` when the prior does not need
    them or SfM was not run); ``num_frames`` is the number of processed frames when known;
    ``frame_size`` is the processing ``(width, height)``; ``source_size`` the input one.
    """

    cameras: Cameras | None = None
    num_frames: int | None = None
    frame_size: tuple[int, int] | None = None
    source_size: tuple[int, int] | None = None
    device: str = "cpu"
    preset: str = "balanced"
    options: dict = field(default_factory=dict)


class DepthPrior(ABC):
    """A source of per-frame depth or disparity (see module docstring)."""

    #: registry name, e.g. ``"mvs"``
    name: str = "?"
    #: True when :meth:`process` needs ``context.cameras`` (the pipeline then runs SfM first)
    needs_cameras: bool = False

    @abstractmethod
    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        """Yield one output per input frame, in order; ``PriorOutput.index`` = position in the stream."""

    def describe(self) -> dict:
        """A JSON-able description for ``run.json``."""
        return {"name": self.name}


_REGISTRY: dict[str, Callable[[str | None], DepthPrior]] = {}


def register_prior(name: str) -> Callable:
    """Class decorator: ``@register_prior("files")`` makes ``--prior files:ARG`` create ``cls(ARG)``."""

    def deco(factory):
        _REGISTRY[name] = factory
        return factory

    return deco


def available_priors() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    # Importing the modules registers them; optional dependencies are imported lazily inside them.
    from . import files, passthrough  # noqa: F401
    from ..eval import simulate  # noqa: F401  (the "simulated" measurement prior)

    for mod in ("mvs", "hf", "onnx", "depthcrafter", "combined", "refined"):
        try:
            __import__(f"{__package__}.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{mod}":
                raise


def create_prior(spec: str) -> DepthPrior:
    """Build a prior from a spec string such as ``"mvs"``, ``"files:/path"``, ``"hf:model+mvs"``."""
    _load_builtin()
    spec = spec.strip()
    if "+" in spec and "combined" in _REGISTRY:
        return _REGISTRY["combined"](spec)
    name, _, arg = spec.partition(":")
    factory = _REGISTRY.get(name)
    if factory is None:
        raise InputError(f"unknown prior '{spec}': choose one of {', '.join(available_priors())}")
    return factory(arg or None)
