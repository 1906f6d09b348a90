"""Orchestration: experiment config, the generation loop, Ray fan-out, MLflow tracking, the CLI."""
