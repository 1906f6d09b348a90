"""CLI sub-commands. Every module here exposes ``register(subparsers)``; :mod:`loop.cli`
discovers them, so adding a command never means editing a central list."""
