"""Viewing a run: ``steadydepth view OUTDIR`` (a 4D viewer in the browser, on viser).

:class:`RunData` reads a run folder back for viewing (no optional dependency);
:func:`open_viewer` starts the viewer (needs the ``viewer`` extra: ``pip install 'steadydepth[viewer]'``).
"""

from __future__ import annotations

from .run_data import RunData, SCENE_FILES, grid_stride

__all__ = ["RunData", "SCENE_FILES", "grid_stride", "open_viewer", "ViewerApp"]


def __getattr__(name: str):
    if name in ("open_viewer", "ViewerApp"):
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
