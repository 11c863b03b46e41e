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
from .types import Cameras, DepthFrame, Frame, Intrinsics, PriorOutput

__all__ = [
    "__version__",
    "Cameras", "DepthFrame", "Frame", "Intrinsics", "PriorOutput",
    "SteadyDepthError", "InputError", "OutputError", "DependencyError", "ReconstructionError", "ModelError",
]
