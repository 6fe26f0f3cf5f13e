"""Appliance: config, session lifecycle, encrypted RAM store, camera sources, session worker, systemd glue."""
