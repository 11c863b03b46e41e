"""``io-passthrough``: NOT a depth estimator. It exists to measure the I/O path alone.

It returns ``1 + luminance`` as "depth" so that decode, write and memory can be
benchmarked without any depth computation (``benchmarks/bench_streaming.py``). Its
outputs are labelled as such in ``run.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from ..types import Frame, PriorOutput
from .base import DepthPrior, PriorContext, register_prior

__all__ = ["PassthroughPrior"]


class PassthroughPrior(DepthPrior):
    name = "io-passthrough"

    def process(self, frames: Iterable[Frame], context: PriorContext) -> Iterator[PriorOutput]:
        for i, frame in enumerate(frames):
            gray = frame.image.astype(np.float32).mean(axis=2) / 255.0
            yield PriorOutput(index=i, values=1.0 + gray, kind="depth")

    def describe(self) -> dict:
        return {"name": self.name, "note": "I/O test only: depth = 1 + luminance, not a depth estimate"}


@register_prior("io-passthrough", internal=True)
def _factory(arg: str | None) -> PassthroughPrior:
    return PassthroughPrior()
