"""A *flickering-prior simulator*: a measurement tool, NOT a depth estimator.

It turns ground-truth z-depth into what per-frame relative depth models typically
produce, so that the consistency layer can be measured against exact ground truth
without model weights:

* affine-invariant **disparity** (``1/depth`` with a random per-frame scale and shift),
* a smooth low-frequency **multiplicative distortion** (a static part, the model's bias,
  plus a part that drifts over time),
* **blurred depth edges** (learned models smooth discontinuities),
* multiplicative **noise**,
* occasional **bad frames** (about 1 in 15 with a large distortion and extreme scale).

Every random quantity of frame ``k`` is a pure function of ``(seed, k)``, so a clip read
with a stride sees the same values for the same source frames.

Importing this module registers the prior ``simulated:GTDIR`` (the production code never
imports it: benchmarks and tests do, explicitly). It reads a ground-truth folder (``GTDIR/depth/
000000.npy`` float32 metres, one per source frame, plus ``GTDIR/cameras.json``) and yields
this simulated disparity; its :meth:`describe` says loudly that it is built from ground truth.
Options: ``simulated:GTDIR?seed=3&strength=strong``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..io.images import natural_sort_key
from ..priors.base import DepthPrior, PriorContext, register_prior
from ..priors.spec import parse_spec_options
from ..types import Frame, PriorOutput

__all__ = [
    "SimulationStrength",
    "STRENGTHS",
    "simulate_frame",
    "simulate_flickering_prior",
    "SimulatedPrior",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationStrength:
    """Parameters of the simulator (log-amplitudes are natural-log multiplicative)."""

    log_scale_range: float  #: per-frame scale is exp(U(-r, r))
    shift_range: tuple[float, float]  #: per-frame shift, in units of the frame's median disparity
    static_distortion: float  #: amplitude of the fixed low-frequency log-distortion
    drift_distortion: float  #: amplitude of the time-varying low-frequency log-distortion
    noise: float  #: std of per-pixel multiplicative log-noise
    edge_blur: float  #: Gaussian sigma of the edge blur, in pixels per 160 px of width
    bad_frame_rate: float  #: probability of a bad frame
    bad_distortion: float  #: amplitude of the extra log-distortion of a bad frame


STRENGTHS: dict[str, SimulationStrength] = {
    "mild": SimulationStrength(0.3, (-0.1, 0.2), 0.03, 0.03, 0.005, 0.5, 0.0, 0.0),
    "typical": SimulationStrength(0.7, (-0.3, 0.5), 0.05, 0.06, 0.01, 0.75, 1.0 / 15.0, 0.3),
    "strong": SimulationStrength(1.1, (-0.4, 1.0), 0.08, 0.12, 0.02, 1.0, 1.0 / 8.0, 0.45),
}


def _smooth_field(rng: np.random.Generator, height: int, width: int, grid: tuple[int, int] = (4, 3)) -> np.ndarray:
    """A zero-mean, unit-ish low-frequency field (bicubic upsampling of a coarse random grid)."""
    coarse = rng.standard_normal((grid[1], grid[0])).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return field - field.mean()


def _blur_valid(values: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur that ignores invalid pixels (normalised convolution)."""
    if sigma <= 0:
        return values
    v = np.where(valid, values, 0.0).astype(np.float32)
    w = valid.astype(np.float32)
    num = cv2.GaussianBlur(v, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(w, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    out = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
    return np.where(valid, out, 0.0).astype(np.float32)


def simulate_frame(depth: np.ndarray, index: int, *, seed: int = 0, strength: str = "typical") -> np.ndarray:
    """Simulated affine-invariant disparity of one frame.

    ``depth`` is ground-truth z-depth ``(H, W)`` (0 or NaN = invalid); ``index`` is the
    frame's position in the source clip (all randomness is a function of ``(seed, index)``).
    Returns float32 disparity ``(H, W)``, strictly positive where ``depth`` is valid and
    ``0`` elsewhere. The scale and shift are unknown to the caller, as with a real model.
    """
    if strength not in STRENGTHS:
        raise InputError(f"unknown simulator strength '{strength}': choose one of {', '.join(STRENGTHS)}")
    p = STRENGTHS[strength]
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise InputError(f"simulate_frame: depth must be (H, W), got shape {depth.shape}")
    h, w = depth.shape
    valid = np.isfinite(depth) & (depth > 0)
    out = np.zeros((h, w), np.float32)
    if not valid.any():
        return out
    disp = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0).astype(np.float32)
    disp = _blur_valid(disp, valid, p.edge_blur * w / 160.0)

    # Static bias of "the model" (same for every frame of a seed).
    rng_static = np.random.default_rng([seed, 0x5EED])
    log_dist = p.static_distortion * _smooth_field(rng_static, h, w)
    # Time-varying drift: a sum of smooth fields with slow sinusoidal coefficients.
    for k in range(3):
        fk = _smooth_field(rng_static, h, w)
        omega = rng_static.uniform(0.05, 0.3)
        phase = rng_static.uniform(0, 2 * np.pi)
        log_dist += p.drift_distortion / np.sqrt(3.0) * np.cos(omega * index + phase) * fk
    rng = np.random.default_rng([seed, int(index)])
    bad = rng.random() < p.bad_frame_rate
    if bad:
        log_dist += p.bad_distortion * _smooth_field(rng, h, w, grid=(3, 2))
        log.debug("simulated bad frame at index %d", index)
    noise = p.noise * rng.standard_normal((h, w)).astype(np.float32)
    disp = disp * np.exp(log_dist + noise)

    scale_range = p.log_scale_range * (1.5 if bad else 1.0)
    scale = float(np.exp(rng.uniform(-scale_range, scale_range)))
    disp_v = disp[valid]
    med = float(np.median(disp_v))
    shift = float(rng.uniform(*p.shift_range)) * med
    # Keep the result strictly positive (0 means invalid): raise the shift if needed.
    lo = float(disp_v.min())
    shift = max(shift, -lo + 0.05 * med)
    out[valid] = scale * (disp[valid] + shift)
    return out


def simulate_flickering_prior(
    depths: Iterable[np.ndarray], *, seed: int = 0, strength: str = "typical", start_index: int = 0
) -> Iterator[np.ndarray]:
    """Stream of simulated flickering disparity for a stream of ground-truth depth maps.

    A measurement tool (see the module docstring): frame ``k`` of the input gets source
    index ``start_index + k``. Yields float32 disparity (0 = invalid).
    """
    for k, depth in enumerate(depths):
        yield simulate_frame(depth, start_index + k, seed=seed, strength=strength)


class SimulatedPrior(DepthPrior):
    """``simulated:GTDIR`` — a SIMULATOR built from ground truth (for benchmarks only)."""

    name = "simulated"

    def __init__(self, folder: str | Path, *, seed: int = 0, strength: str = "typical") -> None:
        self.folder = Path(folder).expanduser()
        depth_dir = self.folder / "depth"
        if not depth_dir.is_dir():
            raise InputError(f"{depth_dir}: --prior simulated: needs a ground-truth folder with depth/*.npy")
        self.files = sorted(depth_dir.glob("*.npy"), key=lambda p: natural_sort_key(p.name))
        if not self.files:
            raise InputError(f"{depth_dir}: no ground-truth depth files (*.npy)")
        if strength not in STRENGTHS:
            raise InputError(f"--prior simulated: unknown strength '{strength}' ({', '.join(STRENGTHS)})")
        self.seed = int(seed)
        self.strength = strength
        log.warning(
            "prior 'simulated' is a flickering-prior SIMULATOR built from the ground truth in %s; "
            "it is a measurement tool, not a depth estimate", self.folder,
        )

    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        for i, frame in enumerate(frames):
            if frame.index >= len(self.files):
                raise InputError(
                    f"{self.folder}: no ground-truth depth for source frame {frame.index} "
                    f"(the folder holds {len(self.files)} files)"
                )
            path = self.files[frame.index]
            try:
                depth = np.load(path).astype(np.float32)
            except (OSError, ValueError) as exc:
                raise InputError(f"{path}: unreadable ground-truth depth ({exc})") from exc
            if depth.ndim != 2:
                raise InputError(f"{path}: ground-truth depth must be (H, W), got {depth.shape}")
            if depth.shape != (frame.height, frame.width):
                depth = cv2.resize(depth, (frame.width, frame.height), interpolation=cv2.INTER_NEAREST)
            disp = simulate_frame(depth, frame.index, seed=self.seed, strength=self.strength)
            yield PriorOutput(index=i, values=disp, kind="disparity", metric=False)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "WARNING": "SIMULATOR built from GROUND TRUTH: not a depth estimate (measurement tool only)",
            "ground_truth": str(self.folder),
            "seed": self.seed,
            "strength": self.strength,
        }


@register_prior("simulated", internal=True)
def _factory(arg: str | None) -> SimulatedPrior:
    if not arg:
        raise InputError("--prior simulated: needs a ground-truth folder, e.g. --prior simulated:path/to/gt")
    folder, opts = parse_spec_options(arg, {"seed": "integer seed", "strength": "simulator strength"}, "simulated")
    kwargs: dict = {}
    if "seed" in opts:
        try:
            kwargs["seed"] = int(opts["seed"])
        except ValueError as exc:
            raise InputError(f"--prior simulated:{arg}: seed must be an integer") from exc
    if "strength" in opts:
        kwargs["strength"] = opts["strength"]
    return SimulatedPrior(folder, **kwargs)
