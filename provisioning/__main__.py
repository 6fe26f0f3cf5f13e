"""``python -m provisioning``: the device setup command line."""

from __future__ import annotations

from provisioning.cli import main

raise SystemExit(main())
