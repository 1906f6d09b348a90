"""Session-scoped local Ray for tests (start once: ray.init takes ~10 s on 2 cores).

Import the fixture into a test module (``from fixtures_ray import ray_session``); a shared
tests/conftest.py may take it over. Only a Ray this fixture started is shut down."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_session():
    ray = pytest.importorskip("ray")
    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    yield ray
    if started:
        ray.shutdown()
