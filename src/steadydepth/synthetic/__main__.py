"""``python -m steadydepth.synthetic``: see :func:`steadydepth.synthetic.cli.main`."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
