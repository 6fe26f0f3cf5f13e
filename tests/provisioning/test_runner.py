"""The one runner: records everywhere, executes only when told to."""

from __future__ import annotations

import io
import sys

import pytest

from provisioning.runner import CommandFailed, Runner


def test_recording_runner_prints_and_runs_nothing(tmp_path: object) -> None:
    out = io.StringIO()
    runner = Runner(execute=False, echo=out)
    result = runner.run(["rm", "-rf", "/definitely-not-run"])
    assert not result.executed and result.returncode == 0
    assert runner.commands == [("rm", "-rf", "/definitely-not-run")]
    assert out.getvalue() == "would run: rm -rf /definitely-not-run\n"


def test_executing_runner_reports_failures_with_the_command() -> None:
    runner = Runner(execute=True)
    ok = runner.run([sys.executable, "-c", "print('hi')"])
    assert ok.executed and ok.stdout == "hi\n"
    with pytest.raises(CommandFailed, match="exit code 3: boom"):
        runner.run([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"])


def test_queries_run_in_every_mode_and_missing_programs_give_127() -> None:
    runner = Runner(execute=False)
    assert runner.query([sys.executable, "-c", "print(1)"]).stdout == "1\n"
    assert runner.query(["no-such-program-xyz"]).returncode == 127
    assert runner.commands == [] and len(runner.queries) == 2
