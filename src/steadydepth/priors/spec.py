"""The ``--prior`` spec grammar, parsed in this one place.

::

    spec     := "refine:" spec            the multi-view refinement stage around ``spec``
              | single ("+" single)+      a combined prior: the first gives shape, the rest geometry
              | single
    single   := name [":" argument]       ``mvs``, ``files:DIR``, ``hf:MODEL``, ``onnx:FILE`` ...
              | name "?" options          ``auto?download=0``
    argument := target ["?" options]      options ``key=value&flag`` (:func:`parse_spec_options`)
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from ..errors import InputError

__all__ = ["PriorSpec", "REFINE_PREFIX", "parse_prior_spec", "parse_spec_options", "option_bool"]

#: prefix of the refinement stage: ``refine:INNER``
REFINE_PREFIX = "refine:"


@dataclass(frozen=True)
class PriorSpec:
    """A parsed spec: ``name`` is the registry name (``"refine"`` and ``"combined"`` for the
    two compound forms), ``arg`` the text after ``name:`` (the inner spec for ``refine``, the
    whole spec for ``combined``), ``parts`` the single specs of a combined prior."""

    text: str
    name: str
    arg: str | None
    parts: tuple[str, ...] = ()


def parse_prior_spec(spec: str) -> PriorSpec:
    """Parse a ``--prior`` spec (see the module docstring); raises :class:`InputError` on a
    combined spec with an empty part."""
    spec = spec.strip()
    if spec.startswith(REFINE_PREFIX):
        return PriorSpec(spec, "refine", spec[len(REFINE_PREFIX):].strip() or None)
    if "+" in spec:
        parts = tuple(s.strip() for s in spec.split("+"))
        if len(parts) < 2 or not all(parts):
            raise InputError(f"--prior '{spec}': a combined prior is 'shape+geometry', e.g. hf:MODEL+mvs")
        return PriorSpec(spec, "combined", spec, parts)
    name, _, arg = spec.partition(":")
    if "?" in name:  # options without an argument: ``auto?download=0``
        name, _, query = spec.partition("?")
        arg = "?" + query
    return PriorSpec(spec, name, arg or None)


def parse_spec_options(arg: str, allowed: dict[str, str], spec_name: str) -> tuple[str, dict[str, str]]:
    """Split ``"target?key=value&flag"`` into ``("target", {"key": "value", "flag": ""})``.

    ``allowed`` maps option names to a one-line description (used in the error message
    when an unknown option is given).
    """
    target, _, query = arg.partition("?")
    opts: dict[str, str] = {}
    if query:
        for key, value in parse_qsl(query, keep_blank_values=True):
            key = key.strip().lower().replace("-", "_")
            if key not in allowed:
                known = "; ".join(f"{k}: {v}" for k, v in allowed.items())
                raise InputError(f"--prior {spec_name}:{arg}: unknown option '{key}' (known options: {known})")
            opts[key] = value.strip()
    return target, opts


_TRUE = {"1", "true", "yes", "on", ""}
_FALSE = {"0", "false", "no", "off"}


def option_bool(value: str | bool | None, name: str, default: bool) -> bool:
    """Read a boolean option given as ``1/0/true/false/yes/no/on/off`` (empty = true)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise InputError(f"option '{name}' must be a boolean (1/0, true/false), got '{value}'")
