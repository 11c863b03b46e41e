"""``auto`` (the default of ``run``): the best learned model that can be had, fused with geometry;
else the weight-free ``mvs``.

Resolution, in this order and without waiting:

1. the first of :data:`~steadydepth.priors.catalog.AUTO_CANDIDATES` whose weights are on disk
   (``model_dir`` / ``$STEADYDEPTH_MODELS`` / the Hugging Face cache,
   :func:`~steadydepth.priors.catalog.find_local`) -> ``MODEL:LOCATION+mvs``;
2. else, when downloading is allowed (no ``--no-download`` / ``download=0``, no
   ``STEADYDEPTH_NO_DOWNLOAD=1``, no ``HF_HUB_OFFLINE=1``) and the Hub answers one request
   for the model within 1 s, the recommended (first) candidate is downloaded into the Hugging Face cache;
3. else ``mvs``, with ONE log line (INFO: shown by default, not under ``--quiet``) saying which
   model would help and the command that gets it.

A candidate that is found but fails to load (a broken file, a missing optional package)
is reported in one warning and the next step is taken. The chosen prior is returned as is
(its ``name`` stays ``mvs`` / ``combined``); its ``describe()`` gains
``"auto": {"chosen": SPEC, "reason": ..., "tried": [...], "resolve_s": ...}``, which ``run.json``
records under ``prior.auto``.

Spec: ``auto`` or ``auto?model_dir=DIR&download=0&geometry=mvs``. The CLI's ``--model-dir``
and ``--no-download`` set ``STEADYDEPTH_MODELS`` / ``STEADYDEPTH_NO_DOWNLOAD`` for the run.
"""

from __future__ import annotations

import logging
import time

from ..errors import DependencyError, InputError, ModelError
from .base import DepthPrior, create_prior, register_prior
from .catalog import (
    AUTO_CANDIDATES, download_disabled, entry, find_local, hf_cache_dir, hub_endpoint, hub_reachable, models_dirs,
)
from .spec import option_bool, parse_spec_options

__all__ = ["resolve_auto", "AutoChoice"]

log = logging.getLogger(__name__)

_OPTIONS = {
    "model_dir": "a folder of model weights searched first (as --model-dir)",
    "download": "allow downloading the recommended model when none is on disk (1/0, default 1)",
    "geometry": "the geometric prior fused with the learned one, and the fallback (default mvs)",
}


class AutoChoice(dict):
    """What ``auto`` chose: ``chosen`` (a ``--prior`` spec), ``reason``, ``tried``, ``resolve_s``."""


def _download(model) -> str:
    """Fetch ``model`` into the Hugging Face cache from the endpoint the probe asked (one attempt);
    returns what its prior takes (the file, or the snapshot folder)."""
    from huggingface_hub import hf_hub_download, snapshot_download

    where = {"endpoint": hub_endpoint(), "cache_dir": hf_cache_dir()}
    if model.single_file:
        return hf_hub_download(model.repo, model.filename, **where)
    return snapshot_download(model.repo, allow_patterns=list(model.required()), **where)


def resolve_auto(model_dir: str | None = None, download: bool | None = None,
                 geometry: str = "mvs") -> tuple[DepthPrior, AutoChoice]:
    """Pick and build the prior (see the module docstring); returns ``(prior, choice)``."""
    t0 = time.perf_counter()
    tried: list[str] = []
    candidates = [entry(k) for k in AUTO_CANDIDATES]

    def build(model, location: str, how: str):
        spec = f"{model.spec(location)}+{geometry}"
        try:
            prior = create_prior(spec)
        except (ModelError, DependencyError, InputError) as exc:
            tried.append(f"{model.key}: {how} but could not be loaded ({exc})")
            log.warning("auto prior: %s %s but could not be loaded: %s", model.title, how, exc)
            return None
        return prior, AutoChoice(chosen=spec, model=model.key, licence=model.licence,
                                 reason=f"{model.title} {how}; fused with {geometry} geometry")

    for model in candidates:
        found = find_local(model, model_dir)
        if found is None:
            tried.append(f"{model.key}: not on disk")
            continue
        got = build(model, found[0], f"found in the {found[1]}")
        if got:
            return _finish(got, tried, t0)
    best = candidates[0]
    why_not = download_disabled(download)
    if why_not is None:
        why_not = hub_reachable(best.repo)
        if why_not is not None:
            why_not = f"the Hugging Face Hub cannot be reached ({why_not})"
    if why_not is None:
        log.info("auto prior: downloading %s (%s, %s) into the Hugging Face cache", best.title, best.size, best.licence)
        try:
            location = _download(best)
        except Exception as exc:  # noqa: BLE001 - any network/hub failure: fall back at once, no retries
            why_not = f"the download of {best.repo} failed ({type(exc).__name__}: {exc})"
            tried.append(f"{best.key}: {why_not}")
        else:
            got = build(best, location, "downloaded from the Hugging Face Hub")
            if got:
                return _finish(got, tried, t0)
            why_not = "the downloaded model could not be loaded"
    prior = create_prior(geometry)
    dirs = models_dirs(model_dir)
    first_dir = dirs[0] if dirs else None
    reason = (f"no learned model on disk and {why_not}: using the weight-free '{geometry}' prior")
    # INFO, not a warning: offline without weights is a normal state (shown by default, not under --quiet)
    log.info("auto prior: %s. A video depth model would help on low-texture and still shots: get %s (%s, %s) with "
                "`%s` (or run `steadydepth priors`)", reason, best.title, best.licence, best.size, best.command(first_dir))
    return _finish((prior, AutoChoice(chosen=geometry, model=None, reason=reason)), tried, t0)


def _finish(got: tuple[DepthPrior, AutoChoice], tried: list[str], t0: float) -> tuple[DepthPrior, AutoChoice]:
    prior, choice = got
    choice["tried"] = tried
    choice["resolve_s"] = round(time.perf_counter() - t0, 3)
    inner = prior.describe

    def describe() -> dict:
        return {**inner(), "auto": dict(choice)}

    prior.describe = describe  # type: ignore[method-assign] - run.json records what auto chose (prior.auto)
    prior.auto_choice = choice  # type: ignore[attr-defined]
    return prior, choice


@register_prior("auto")
def _factory(arg: str | None) -> DepthPrior:
    _, opts = parse_spec_options(arg or "", _OPTIONS, "auto")
    download = option_bool(opts["download"], "download", True) if "download" in opts else None
    geometry = opts.get("geometry") or "mvs"
    return resolve_auto(opts.get("model_dir") or None, download, geometry)[0]
