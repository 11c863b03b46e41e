"""Depth priors: where per-frame depth comes from (see :mod:`steadydepth.priors.base`)."""

from __future__ import annotations

from .base import DepthPrior, PriorContext, available_priors, create_prior, register_prior

__all__ = ["DepthPrior", "PriorContext", "available_priors", "create_prior", "register_prior"]
