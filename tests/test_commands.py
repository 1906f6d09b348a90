"""Every sub-command follows one shape: ``register(sub)`` in a module of sccl.loop.commands,
and a handler named ``cmd_<command>`` that takes the parsed arguments."""

from __future__ import annotations

import argparse

from sccl.loop.cli import build_parser

COMMANDS = {"run", "resume", "correct", "physics", "import", "export", "report", "ui", "data", "sample"}


def _subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                nested = _subcommands(child, f"{prefix}{name}_")
                out.update(nested or {f"{prefix}{name}": child})
    return out


def test_every_command_has_a_cmd_handler_in_sccl_loop_commands():
    leaves = _subcommands(build_parser())
    assert {name.split("_")[0] for name in leaves} == COMMANDS
    for name, parser in leaves.items():
        func = parser.get_default("func")
        assert func is not None, name
        assert func.__name__ == f"cmd_{name}", f"sccl {name.replace('_', ' ')}: handler {func.__name__}"
        assert func.__module__.startswith("sccl.loop.commands."), func.__module__


def test_correct_table_columns_stay_aligned_for_long_statuses():
    """A status wider than its header ("unfaithful") widens the column instead of pushing the
    numbers of that row out of line."""
    from sccl.loop.commands.correct import diagnostics_table

    diagnostics = [{"crouch_mm": 7.0}, {"crouch_mm": 41.0}]
    rows = [{"clip": "a", "status": "ok", **diagnostics[0]}, {"clip": "b", "status": "unfaithful", **diagnostics[1]}]
    lines = diagnostics_table(rows, diagnostics, None).splitlines()
    assert len({len(line) for line in lines}) == 1, lines
    assert lines[0].index("crouch_mm") + len("crouch_mm") == lines[2].index("41") + 2
