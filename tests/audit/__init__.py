"""Whole-system privacy, fault and load audit of the headshot kiosk (issue 7, DESIGN.md §9).

Run as ``python -m tests.audit [--quick|--full] [--out build/audit]``. It starts the real kiosk as a
subprocess, drives visits through its HTTP API and a real browser, kills it at random phases, fuzzes its
listeners and image intake, loads the delivery listener, then searches the filesystem, the logs and the
main process's memory for anything a guest left behind. See ``docs/AUDIT.md`` for the method and its limits.
"""
