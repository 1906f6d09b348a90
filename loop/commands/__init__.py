"""CLI sub-commands. Every module here exposes ``register(sub: Subparsers) -> None``, which adds
its sub-command(s) and sets ``func`` to a handler named ``cmd_<command>`` (``cmd_data_info``
for ``sccl data info``) that takes the parsed arguments and returns the exit code.
:mod:`sccl.loop.cli` discovers the modules, so adding a command never means editing a central
list."""

from __future__ import annotations

import argparse
from typing import TypeAlias

#: What ``register`` receives: the object ``ArgumentParser.add_subparsers()`` returns.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
