"""``steadydepth animate``: one picture, or one frame of a processed run, to a 3D camera
fly-through with optional looping motion of sky or water.

Modules: :mod:`.layers` (layered depth image), :mod:`.raster` (mesh rasteriser), :mod:`.render`
(a view, with the final hole fill), :mod:`.paths` (camera paths), :mod:`.motion` (looping
Eulerian motion), :mod:`.detect` (sky / water masks), :mod:`.clip_fill` (start from a run,
fill hidden parts from the clip), :mod:`.command` (the command).
"""

from .command import AnimateOptions, animate

__all__ = ["AnimateOptions", "animate"]
