"""The depth-prior protocol and the registry that turns ``--prior SPEC`` into a prior.

A prior is a *stream transformer*: it consumes processed frames in order and yields
one :class:`~steadydepth.types.PriorOutput` per frame, in the same order. Per-frame
models map one to one; windowed models (DepthCrafter) and multi-view stereo keep the
few frames they need in a bounded buffer. This keeps memory flat in clip length.

The ``--prior`` grammar (``name:argument?options``, ``a+b``, ``refine:SPEC``) is parsed in
:mod:`steadydepth.priors.spec`; a module registers its factory with :func:`register_prior`
and that is all it takes (every public module of this package is imported on first use).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ..errors import InputError
from ..io.frames import FrameSource
from ..types import Cameras, Frame, PriorOutput
from .spec import parse_prior_spec

__all__ = ["DepthPrior", "PriorContext", "register_prior", "create_prior", "available_priors"]

log = logging.getLogger(__name__)


@dataclass
class PriorContext:
    """What the pipeline knows when a prior runs.

    ``cameras`` are at the *processing* resolution (``None`` when the prior does not need
    them or SfM was not run); ``num_frames`` is the number of processed frames when known;
    ``frame_size`` is the processing ``(width, height)``; ``source_size`` the input one.
    ``first_position`` is the stream position of the first frame :meth:`DepthPrior.process`
    receives: 0, except in a resumed run whose prior declares :meth:`DepthPrior.frames_before`
    (outputs then carry positions from ``first_position`` on, and cameras stay indexed by position).
    """

    cameras: Cameras | None = None
    num_frames: int | None = None
    frame_size: tuple[int, int] | None = None
    source_size: tuple[int, int] | None = None
    device: str = "cpu"
    preset: str = "balanced"
    options: dict = field(default_factory=dict)
    first_position: int = 0


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

    def frames_before(self, context: PriorContext) -> int | None:
        """For resuming a run mid-clip: how many frames before position ``p`` this prior must be
        given again (starting at ``context.first_position = p - frames_before``) for its output
        at ``p`` to be the one a run from the clip's start gives; None (the default) when it
        must start at the clip's start."""
        return None

    def check_source(self, source: FrameSource) -> None:
        """Raise :class:`~steadydepth.errors.InputError` before any work when this prior cannot
        process ``source`` (the default accepts every source); priors that wrap others check them too."""


_REGISTRY: dict[str, Callable[[str | None], DepthPrior]] = {}
#: registered names that are not depth sources a user picks (measurement tools, grammar forms)
_INTERNAL: set[str] = set()


def register_prior(name: str, *, internal: bool = False) -> Callable:
    """Class decorator: ``@register_prior("files")`` makes ``--prior files:ARG`` create ``cls(ARG)``.

    ``internal=True`` keeps the name out of :func:`available_priors` (it can still be created)."""

    def deco(factory):
        _REGISTRY[name] = factory
        if internal:
            _INTERNAL.add(name)
        return factory

    return deco


def available_priors(*, include_internal: bool = False) -> list[str]:
    """Registered prior names, sorted; internal ones (I/O benchmark, simulator, the ``a+b``
    form's registry entry) only with ``include_internal``."""
    _load_builtin()
    return sorted(n for n in _REGISTRY if include_internal or n not in _INTERNAL)


def _load_builtin() -> None:
    """Import every public module of this package: importing one runs its ``@register_prior``.

    Optional dependencies are imported lazily inside the modules, so this never needs them.
    """
    import importlib
    import pkgutil

    from .. import priors as _pkg

    for info in pkgutil.iter_modules(_pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{_pkg.__name__}.{info.name}")


def create_prior(spec: str) -> DepthPrior:
    """Build a prior from a spec string such as ``"mvs"``, ``"files:/path"``, ``"hf:model+mvs"``."""
    _load_builtin()
    parsed = parse_prior_spec(spec)
    factory = _REGISTRY.get(parsed.name)
    if factory is None:
        raise InputError(f"unknown prior '{parsed.text}': choose one of {', '.join(available_priors())}")
    return factory(parsed.arg)
