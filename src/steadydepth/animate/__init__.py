"""``steadydepth animate``: one picture, or one frame of a processed run, to a 3D camera
fly-through with optional looping motion of sky or water.

Modules: :mod:`.layers` (layered depth image), :mod:`.raster` (mesh rasteriser), :mod:`.render`
(a view, with the final hole fill), :mod:`.paths` (camera paths), :mod:`.motion` (looping
Eulerian motion), :mod:`.detect` (sky / water masks), :mod:`.clip_fill` (start from a run,
fill hidden parts from the clip), :mod:`.command` (the command).
"""

from __future__ import annotations

__all__ = ["AnimateOptions", "animate"]


def __getattr__(name: str):
    """Import the command on first use: the rasteriser imports torch (about 1.5 s), which the
    command line's parser (it reads :data:`.paths.PATHS`) and every other command do not need."""
    if name in __all__:
        from . import command

        return getattr(command, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
