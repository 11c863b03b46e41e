"""``steadydepth serve``: a small local web app (drop a clip, see progress, get depth, downloads, 3D).

:func:`~steadydepth.web.server.start_server` starts it; :mod:`~steadydepth.web.jobs` holds the
job rules (one server-named folder per upload, caps, queue, clean-up). Standard library only.
"""

from __future__ import annotations

__all__ = ["start_server", "WebApp", "JobLimits"]


def __getattr__(name: str):
    if name in ("start_server", "WebApp"):
        from . import server

        return getattr(server, name)
    if name == "JobLimits":
        from .jobs import JobLimits

        return JobLimits
    raise AttributeError(name)
