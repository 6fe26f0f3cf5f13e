"""The one runner every shell step goes through: it executes on the device and records everywhere.

``Runner(execute=False)`` (what ``--root`` and the tests use) prints and records each command but runs
nothing, so a staging tree can be provisioned on any machine without touching the host. ``query`` is for
read-only probes (``systemd-analyze security``, ``timedatectl show``): it runs in both modes because it
changes nothing, and it is recorded too.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from provisioning import ProvisioningError

__all__ = ["CommandFailed", "CommandResult", "Runner"]

# A probe must never hang doctor (a wedged systemd or a hanging GStreamer probe): cap every query.
_QUERY_TIMEOUT_SECONDS = 60.0


class CommandFailed(ProvisioningError):
    """A command exited non-zero (or could not be started)."""


@dataclass(frozen=True)
class CommandResult:
    """What a command did. ``executed`` is False when it was only recorded (``--root``)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    executed: bool


@dataclass
class Runner:
    """Runs (``execute=True``) or records (``execute=False``) commands, in order.

    ``commands`` lists every command given to :meth:`run` (mutating steps); ``queries`` every
    read-only probe. ``echo`` receives one ``+ cmd`` (run) or ``would run: cmd`` (recorded) line per step.
    """

    execute: bool
    echo: TextIO | None = None
    commands: list[tuple[str, ...]] = field(default_factory=list)
    queries: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, check: bool = True) -> CommandResult:
        """Run a mutating command (or only record it when not executing).

        Raises :class:`CommandFailed` with the command's stderr when it fails and ``check`` is set.
        """
        args = tuple(argv)
        self.commands.append(args)
        text = shlex.join(args)
        if not self.execute:
            self._say(f"would run: {text}")
            return CommandResult(args, 0, "", "", executed=False)
        self._say(f"+ {text}")
        result = _call(args, timeout=None)
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            tail = detail[-1] if detail else "no output"
            raise CommandFailed(f"{text} failed with exit code {result.returncode}: {tail}")
        return result

    def query(self, argv: Sequence[str], *, timeout: float = _QUERY_TIMEOUT_SECONDS) -> CommandResult:
        """Run a read-only probe in every mode. A missing program gives returncode 127, a timeout 124
        (like the shell and timeout(1)), so callers branch on the code instead of catching."""
        args = tuple(argv)
        self.queries.append(args)
        return _call(args, timeout=timeout)

    def _say(self, line: str) -> None:
        if self.echo is not None:
            print(line, file=self.echo)


def _call(args: tuple[str, ...], *, timeout: float | None) -> CommandResult:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return CommandResult(args, 127, "", f"{args[0]}: command not found", executed=True)
    except subprocess.TimeoutExpired:
        return CommandResult(args, 124, "", f"{args[0]}: timed out after {timeout:g}s", executed=True)
    except OSError as exc:
        return CommandResult(args, 126, "", f"{args[0]}: {exc.strerror}", executed=True)
    return CommandResult(args, done.returncode, done.stdout, done.stderr, executed=True)


def default_echo() -> TextIO:
    """Where command lines are echoed by the CLI (stdout: part of the plan/apply report)."""
    return sys.stdout
