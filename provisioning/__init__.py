"""Device provisioning: systemd units, RAM store, sysctl/journald/coredump policy, TLS, plans, ``doctor``.

``python -m provisioning plan|apply|tls|cert|doctor|build-engines|staff-bootstrap|hotspot|setup-sheet`` (see
``cli``). This
package imports ``appliance`` and ``engine``; nothing imports it (DESIGN.md §3).
"""

from __future__ import annotations

__all__ = ["ProvisioningError"]


class ProvisioningError(Exception):
    """A provisioning step cannot go on; the message says what was expected, what was found and what to do."""
