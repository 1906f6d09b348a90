"""Component settings are typed dataclasses built by the experiment config's parser: one
wording, "did you mean" for a misspelt key, the key named for a bad value."""

from __future__ import annotations

import pytest

from sccl.correctors import CorrectorError, build_corrector
from sccl.generators import GeneratorConfigError, build_generator
from sccl.loop.config import ConfigError, config_from_dict
from sccl.simulators import SimConfig, SimulatorConfigError


@pytest.mark.parametrize("build,error,match", [
    (lambda: config_from_dict({"generatons": 3}), ConfigError, r"'generatons' \(did you mean generations\?\)"),
    (lambda: SimConfig.from_dict({"assist_capg": 0.3}), SimulatorConfigError,
     r"simulator setting 'assist_capg' \(did you mean assist_cap_g\?\)"),
    (lambda: build_corrector("physics", {"asist_cap_g": 0.3}), CorrectorError,
     r"corrector physics setting 'asist_cap_g' \(did you mean assist_cap_g\?\)"),
    (lambda: build_corrector("nearest_cluster", {"strenght": 0.5}), CorrectorError, r"did you mean strength\?"),
    (lambda: build_corrector("ideal", {"gama": 0.5}), CorrectorError, r"did you mean gamma\?"),
    (lambda: build_generator("diffusion", {"preset": "tiny", "sampl_steps": 3}), GeneratorConfigError,
     r"diffusion setting 'sampl_steps' \(did you mean sample_steps\?\)"),
    (lambda: build_generator("gaussian", {"dof": 1}), GeneratorConfigError, r"did you mean ddof\?"),
    (lambda: build_generator("gaussian_mixture", {"n_component": 2}), GeneratorConfigError,
     r"did you mean n_components\?"),
])
def test_misspelt_keys_get_the_closest_name(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize("build,error,match", [
    (lambda: build_corrector("physics", {"assist_cap_g": "lots"}), CorrectorError,
     r"setting 'assist_cap_g': expected a number, got 'lots'"),
    (lambda: build_corrector("nearest_cluster", {"k": 2.5}), CorrectorError, r"'k': expected an integer"),
    (lambda: build_generator("diffusion", {"preset": "tiny", "cond": "maybe"}), GeneratorConfigError,
     r"'cond': expected true or false"),
    (lambda: build_generator("diffusion", {"preset": "tiny", "label_names": "walk"}), GeneratorConfigError,
     r"'label_names'"),
])
def test_bad_values_name_the_key(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_component_settings_accept_command_line_strings():
    """`sccl correct --set` and YAML 1.1 ("1e-4" is text) hand numbers over as strings."""
    c = build_corrector("physics", {"assist_cap_g": "0.3", "self_collision": "true", "solver_iterations": 12.0})
    assert (c.sim_config.assist_cap_g, c.sim_config.self_collision, c.sim_config.solver_iterations) == (0.3, True, 12)
    g = build_generator("diffusion", {"preset": "tiny", "device": "cpu", "lr": "1e-4"})
    assert g.config["lr"] == 1e-4 and g.settings.lr == 1e-4 and g.settings.layers == 2


def test_settings_match_the_dict_the_component_keeps():
    g = build_generator("diffusion", {"preset": "tiny", "device": "cpu"})
    assert {k: getattr(g.settings, k) for k in g.config} == g.config
    c = build_corrector("nearest_cluster", {"k": 3, "policy": "keep_raw"})
    assert (c.settings.k, c.k, c.policy, c.config) == (3, 3, "keep_raw", {"k": 3, "policy": "keep_raw"})


def test_component_settings_accept_python_sequences_and_numpy_scalars():
    import numpy as np

    g = build_generator("diffusion", {"preset": "tiny", "device": "cpu", "label_names": ("a", "b"),
                                      "layers": np.int64(2), "lr": np.float32(0.5)})
    assert g.settings.label_names == ["a", "b"] and g.config["layers"] == 2 and g.settings.lr == 0.5
    with pytest.raises(GeneratorConfigError, match="diffusion setting 'label_names'"):
        build_generator("diffusion", {"preset": "tiny", "label_names": (1, 2)})
