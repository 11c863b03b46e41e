"""steadydepth: temporally consistent depth, cameras and 3D from ordinary video."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    DependencyError,
    InputError,
    ModelError,
    OutputError,
    ReconstructionError,
    SteadyDepthError,
)
from .options import RunOptions
from .pipeline import DepthVideo, estimate
from .types import Cameras, DepthFrame, Frame, Intrinsics, PriorOutput

__all__ = [
    "__version__",
    "estimate", "DepthVideo", "RunOptions",
    "Cameras", "DepthFrame", "Frame", "Intrinsics", "PriorOutput",
    "SteadyDepthError", "InputError", "OutputError", "DependencyError", "ReconstructionError", "ModelError",
]
