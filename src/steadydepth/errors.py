"""One exception hierarchy for steadydepth.

Every error a user can cause (bad input, missing optional dependency, refused
output folder) is a :class:`SteadyDepthError`; its message names the file and the
problem so the command line can print it on one line and exit non-zero.
"""

from __future__ import annotations

__all__ = [
    "SteadyDepthError",
    "InputError",
    "OutputError",
    "DependencyError",
    "ReconstructionError",
    "ModelError",
    "NoDepthError",
    "exit_codes_help",
]


class SteadyDepthError(Exception):
    """Base class of every error steadydepth raises on purpose."""

    exit_code = 1


class InputError(SteadyDepthError):
    """Input cannot be read: missing, not a video/image, no decodable frame, bad format."""

    exit_code = 2


class OutputError(SteadyDepthError):
    """Output cannot be written: unwritable folder, a folder holding another run."""

    exit_code = 3


class DependencyError(SteadyDepthError):
    """An optional dependency (an extra) is missing; the message says what to install."""

    exit_code = 4


class ReconstructionError(SteadyDepthError):
    """Structure from motion or multi-view stereo could not produce a usable result."""

    exit_code = 5


class ModelError(SteadyDepthError):
    """A learned model cannot be loaded or run (no weights offline, bad file, bad config)."""

    exit_code = 6


class NoDepthError(ReconstructionError):
    """The run finished but no frame has any valid depth (exit code 7).

    Typical causes: the camera does not translate (static, pure pan) so multi-view stereo
    has no parallax, or structure from motion built no model (too few frames, too few
    features). The message says which, and what to do (a learned prior, ``--fov``, a longer
    clip). The per-frame files already written hold depth 0 (invalid), never a made-up value.
    """

    exit_code = 7


def exit_codes_help() -> str:
    """The command line's exit codes, one per error class (for ``--help`` and the README)."""
    codes = [(0, "done"), (1, "internal error"), (InputError.exit_code, "bad input or option"),
             (OutputError.exit_code, "output cannot be written"),
             (DependencyError.exit_code, "optional dependency missing"),
             (ReconstructionError.exit_code, "cameras could not be solved"),
             (ModelError.exit_code, "learned model cannot be loaded"),
             (NoDepthError.exit_code, "no depth could be recovered"), (130, "interrupted")]
    return "exit codes: " + ", ".join(f"{code} {what}" for code, what in codes)


def require(module: str, extra: str, purpose: str):
    """Import an optional module or raise :class:`DependencyError` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DependencyError(
            f"{purpose} needs the Python package '{module}' ({exc}); "
            f"install it with: pip install 'steadydepth[{extra}]'"
        ) from exc
