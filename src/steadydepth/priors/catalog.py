"""The learned models steadydepth knows how to run, where their weights are looked for, and how
a user gets them (``steadydepth priors`` prints this; ``--prior auto`` picks from it).

Weights are looked for, in order, in

1. the model folder given to ``--model-dir DIR`` (or ``auto?model_dir=DIR``), then
2. the folder in ``$STEADYDEPTH_MODELS``,
3. the Hugging Face cache (``$HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``).

In a model folder an entry is found as ``DIR/<folder>/<file>`` (what ``hf download REPO
--local-dir DIR/<folder>`` writes) or, for single-file checkpoints, ``DIR/<file>``.

Downloading is off when ``--no-download``, ``STEADYDEPTH_NO_DOWNLOAD=1``, ``HF_HUB_OFFLINE=1``
(or ``TRANSFORMERS_OFFLINE=1``) is given, and otherwise only tried after a quick TCP probe of
the Hub (:func:`hub_reachable`, one request, 1 s timeout: no retries, no multi-minute waits).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ._torch_utils import hub_offline

__all__ = ["ModelEntry", "MODELS", "AUTO_CANDIDATES", "find_local", "download_disabled", "hub_reachable",
           "hub_endpoint", "hf_cache_dir", "models_dirs", "format_listing"]

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ModelEntry:
    """One learned model: ``prior`` is the ``--prior`` name that runs it (``hf``, ``vda``, ...);
    ``repo``/``filename`` its Hugging Face repository and the file that proves it is there
    (``None``: not on the Hub); ``folder`` the name it gets under a models folder; ``files``
    every file a local folder must hold (default: just ``filename``)."""

    key: str
    title: str
    prior: str
    licence: str
    size: str
    outputs: str
    repo: str | None
    filename: str
    folder: str
    files: tuple[str, ...] = ()
    single_file: bool = False
    note: str = ""

    def required(self) -> tuple[str, ...]:
        return self.files or (self.filename,)

    def command(self, models_dir: str | os.PathLike | None = None) -> str:
        """The one command that puts the weights where :func:`find_local` looks: into
        ``models_dir/<folder>`` when given, else into the Hugging Face cache."""
        if self.repo is None:
            return self.note
        only = f" {self.filename}" if self.single_file else ""
        dest = f" --local-dir {Path(models_dir) / self.folder}" if models_dir else ""
        return f"hf download {self.repo}{only}{dest}"

    def spec(self, location: str) -> str:
        """The ``--prior`` spec that runs this model from ``location`` (a folder, file or Hub id)."""
        return f"{self.prior}:{location}"


MODELS: tuple[ModelEntry, ...] = (
    ModelEntry(
        key="vda-small", title="Video Depth Anything Small (ViT-S, 28.4M parameters)", prior="vda",
        licence="Apache-2.0", size="about 115 MB",
        outputs="relative disparity, video-consistent (windows of 32 frames with temporal attention)",
        repo="depth-anything/Video-Depth-Anything-Small", filename="video_depth_anything_vits.pth",
        folder="Video-Depth-Anything-Small", single_file=True,
    ),
    ModelEntry(
        key="da2-small", title="Depth Anything V2 Small (transformers, 24.8M parameters)", prior="hf",
        licence="Apache-2.0", size="about 100 MB", outputs="relative disparity, per frame",
        repo="depth-anything/Depth-Anything-V2-Small-hf", filename="config.json",
        folder="Depth-Anything-V2-Small-hf",
        files=("config.json", "preprocessor_config.json", "model.safetensors"),
    ),
    ModelEntry(
        key="vda-small-metric", title="Metric Video Depth Anything Small (ViT-S)", prior="vda",
        licence="see its model card (the VDA README gives Apache-2.0 for the Small models)", size="about 115 MB",
        outputs="metric depth (metres), video-consistent",
        repo="depth-anything/Metric-Video-Depth-Anything-Small", filename="metric_video_depth_anything_vits.pth",
        folder="Metric-Video-Depth-Anything-Small", single_file=True,
    ),
    ModelEntry(
        key="vda-base", title="Video Depth Anything Base (ViT-B, 113M parameters)", prior="vda",
        licence="CC-BY-NC-4.0 (non-commercial)", size="about 450 MB",
        outputs="relative disparity, video-consistent",
        repo="depth-anything/Video-Depth-Anything-Base", filename="video_depth_anything_vitb.pth",
        folder="Video-Depth-Anything-Base", single_file=True,
    ),
    ModelEntry(
        key="fastdepth", title="FastDepth (MobileNet-NNConv5, int8 TFLite; weak, 2019)", prior="tflite",
        licence="MIT", size="1.6 MB", outputs="metric depth (metres, indoor NYU scale), per frame",
        repo=None, filename="fast_depth_224.tflite", folder="fastdepth", single_file=True,
        note="not on the Hub: copy fast_depth_224.tflite (openmv/openmv lib/models/) into a models "
             "folder's fastdepth/ and use --prior tflite:FILE",
    ),
)

#: what ``--prior auto`` tries, best first (keys of :data:`MODELS`)
AUTO_CANDIDATES: tuple[str, ...] = ("vda-small", "da2-small")


def entry(key: str) -> ModelEntry:
    for m in MODELS:
        if m.key == key:
            return m
    raise KeyError(key)


def models_dirs(model_dir: str | os.PathLike | None = None) -> list[Path]:
    """The model folders searched, in order: ``model_dir`` then ``$STEADYDEPTH_MODELS`` (one folder, or
    several joined by ``os.pathsep``)."""
    out = []
    env = [d for d in os.environ.get("STEADYDEPTH_MODELS", "").split(os.pathsep) if d.strip()]
    for d in [model_dir, *env]:
        if d:
            p = Path(d).expanduser()
            if p not in out:
                out.append(p)
    return out


def _hf_cache_dir() -> str | None:
    try:
        import huggingface_hub.constants as c
    except ImportError:  # pragma: no cover - comes with transformers
        return None
    return os.environ.get("HF_HUB_CACHE") or c.HF_HUB_CACHE


def find_local(model: ModelEntry, model_dir: str | os.PathLike | None = None) -> tuple[str, str] | None:
    """``(location, where)`` of ``model``'s weights on disk, or ``None``: ``location`` is what its
    prior takes (a file for single-file checkpoints, else a folder: in the Hugging Face cache, the
    snapshot folder); ``where`` says which of the places of the module docstring."""
    for d in models_dirs(model_dir):
        candidates = [d / model.folder] + ([d] if model.single_file else [])
        for c in candidates:
            if all((c / f).is_file() for f in model.required()):
                loc = c / model.filename if model.single_file else c
                return str(loc), f"model folder {d}"
    if model.repo is None:
        return None
    cache = _hf_cache_dir()
    if cache is None or not Path(cache).is_dir():
        return None
    from huggingface_hub import try_to_load_from_cache

    paths = [try_to_load_from_cache(model.repo, f, cache_dir=cache) for f in model.required()]
    if all(isinstance(p, str) for p in paths):
        # the snapshot folder, not the Hub id: loading it never touches the network
        loc = paths[0] if model.single_file else str(Path(paths[0]).parent)
        return str(loc), f"Hugging Face cache {cache}"
    return None


def download_disabled(download: bool | None = None) -> str | None:
    """Why downloading is off (``download=False``, ``STEADYDEPTH_NO_DOWNLOAD``, ``HF_HUB_OFFLINE``), or None."""
    if download is False:
        return "downloading is turned off (--no-download)"
    if os.environ.get("STEADYDEPTH_NO_DOWNLOAD", "").strip().lower() in _TRUE:
        return "downloading is turned off (STEADYDEPTH_NO_DOWNLOAD=1)"
    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    return None


def hub_endpoint() -> str:
    """The Hub's address: ``$HF_ENDPOINT`` (read now, not at import) or huggingface_hub's default."""
    try:
        import huggingface_hub.constants as c

        endpoint = os.environ.get("HF_ENDPOINT") or c.ENDPOINT
    except ImportError:  # pragma: no cover
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return endpoint.rstrip("/")


def hf_cache_dir() -> str | None:
    """The Hugging Face cache: ``$HF_HUB_CACHE`` (read now) or huggingface_hub's default."""
    return _hf_cache_dir()


def hub_reachable(repo: str, timeout_s: float = 1.0) -> str | None:
    """None when the Hub answers for ``repo`` within ``timeout_s`` (one request, no retries); else why not.

    A TCP connection is not proof (an intercepting proxy accepts every one): the probe asks
    ``ENDPOINT/api/models/REPO`` and wants HTTP 200 with a JSON body naming the repository."""
    import json
    import urllib.error
    import urllib.request

    url = f"{hub_endpoint()}/api/models/{repo}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - a fixed https/http endpoint
            body = json.loads(resp.read(1 << 20).decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # URLError, timeouts, not JSON
        reason = getattr(exc, "reason", exc)
        return f"{url}: {reason}"
    if not isinstance(body, dict) or repo not in (body.get("id"), body.get("modelId")):
        return f"{url}: the answer is not the Hub's"
    return None


def format_listing(model_dir: str | os.PathLike | None = None) -> str:
    """The text of ``steadydepth priors``' learned-model section: one block per model."""
    lines = []
    dirs = models_dirs(model_dir)
    first = dirs[0] if dirs else None
    for m in MODELS:
        found = find_local(m, model_dir)
        state = f"present ({found[1]}): --prior {m.spec(found[0])}" if found else "not on disk"
        auto = " [auto candidate]" if m.key in AUTO_CANDIDATES else ""
        lines += [
            f"{m.key}: {m.title}{auto}",
            f"    licence: {m.licence}; download: {m.size}",
            f"    outputs: {m.outputs}",
            f"    get it:  {m.command(first)}",
            f"    state:   {state}",
        ]
    names = ", ".join(str(d) for d in dirs) or "none (set STEADYDEPTH_MODELS or use --model-dir)"
    lines.append(f"model folders searched: {names}; then the Hugging Face cache ({_hf_cache_dir()}), where "
                 f"`hf download` (pip install huggingface_hub) puts files by default")
    return "\n".join(lines)
