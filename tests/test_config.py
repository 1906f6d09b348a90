"""Experiment config: validation messages, overrides, sweeps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sccl.loop.cli import main as cli_main
from sccl.loop.config import ConfigError, config_from_dict, expand_arms, load_config, parse_override

CONFIGS = ["smoke", "quickstart", "paper_grid", "toy_gaussian"]


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_are_valid(name):
    cfg = load_config(f"configs/{name}.yaml")
    assert expand_arms(cfg)


@pytest.mark.parametrize(
    "raw,overrides,message",
    [
        ({"generatons": 3}, [], "unknown config key 'generatons' \\(did you mean generations\\?\\)"),
        ({"generator": {"presett": "tiny"}}, [], "unknown config key 'generator.presett'"),
        ({"generations": "three"}, [], "'generations': expected an integer, got 'three'"),
        ({"generations": -1}, [], "'generations': expected an integer >= 0, got -1"),
        ({"synthetic_ratio": -0.5}, [], "'synthetic_ratio': expected a number >= 0, got -0.5"),
        ({"regime": "mix"}, [], "'regime': expected one of augment, replace, accumulate"),
        ({"data": {"path": "/no/such/dir"}}, [], "'data.path': directory /no/such/dir does not exist"),
        ({"data": {"window": 1.5}}, [], "'data.window': expected an integer"),
        ({"corrector": {"policy": "drop"}}, [], "'corrector.policy': expected one of reject"),
        ({"train": {"finetune": "yes"}}, [], "'train.finetune': expected true or false"),
        ({"data": "bundled"}, [], "'data': expected a mapping"),
        ({}, ["generations"], "expected key=value"),
        ({}, ["synthetic_ratio=-1"], "'synthetic_ratio': expected a number >= 0"),
        ({"arms": [{"name": "a", "regime": "bogus"}]}, [], "arm a: config key 'regime'"),
        ({"grid": {"seed": []}}, [], "'grid.seed': expected a non-empty list"),
        ({"data": {"kind": "gaussian"}}, [], "'data.n': the gaussian toy needs"),
    ],
)
def test_bad_configs_name_the_key(raw, overrides, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw, overrides)


def test_overrides_parse_yaml_values_and_nested_keys():
    cfg = config_from_dict({}, ["generations=7", "synthetic_ratio=0.25", "train.finetune=false",
                                "corrector.params.assist_cap_g=0.3", "data.path=null"])
    assert cfg.generations == 7 and cfg.synthetic_ratio == 0.25 and cfg.train.finetune is False
    assert cfg.corrector.params == {"assist_cap_g": 0.3}
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])


def test_arms_cross_grid_and_arm_overrides_win():
    cfg = config_from_dict({
        "arms": [{"name": "baseline", "synthetic_ratio": 0.0}, {"name": "corr", "corrector.name": "physics"}],
        "grid": {"synthetic_ratio": [0.5, 1.0], "seed": [0, 1]},
    })
    arms = expand_arms(cfg)
    names = [a.name for a in arms]
    assert names == ["baseline_seed=0", "baseline_seed=1", "corr_synthetic_ratio=0.5_seed=0",
                     "corr_synthetic_ratio=0.5_seed=1", "corr_synthetic_ratio=1_seed=0", "corr_synthetic_ratio=1_seed=1"]
    corr = arms[4]
    assert corr.config.synthetic_ratio == 1.0 and corr.config.seed == 0 and corr.config.corrector.name == "physics"
    assert corr.group == "corr_synthetic_ratio=1"
    assert corr.params == {"synthetic_ratio": 1.0, "seed": 0, "corrector.name": "physics"}
    # generation 0 is shared by arms with equal data/generator/seed
    assert arms[0].gen0_key() == arms[2].gen0_key() != arms[1].gen0_key()


def test_duplicate_arm_names_are_refused():
    with pytest.raises(ConfigError, match="both named 'x'"):
        config_from_dict({"arms": [{"name": "x", "seed": 1}, {"name": "x", "seed": 2}]})


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["generations", "synthetic_ratio", "regime", "seed", "name", "data", "bogus"]),
                       st.one_of(st.integers(-5, 5), st.floats(-2, 2, allow_nan=False), st.text(max_size=4),
                                 st.booleans(), st.none(), st.lists(st.integers(), max_size=2)), max_size=4))
def test_config_loader_accepts_or_raises_config_error(raw):
    """Property: any mapping either validates or raises ConfigError (never another exception)."""
    try:
        cfg = config_from_dict(raw)
    except ConfigError:
        return
    assert cfg.generations >= 0 and cfg.synthetic_ratio >= 0


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("generations: -2\n")
    assert cli_main(["run", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: config key 'generations': expected an integer >= 0, got -2"
    assert cli_main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    assert cli_main(["run", str(tmp_path / "broken.yaml")]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_status_and_summary_keep_arm_names_apart():
    """Arms of a sweep often differ only in their last characters (the seed): the status lines
    and the final table must not cut that part off."""
    import io
    from pathlib import Path

    from sccl.loop.sweep import Progress, SweepResult, summary_text

    names = [f"self_correcting_synthetic_ratio=0.5_seed={s}" for s in (0, 1)] + ["x" * 80 + "_seed=7"]
    progress = Progress(names, {n: 3 for n in names}, io.StringIO())
    lines = [progress.line(n, {"generation": 1, "phase": "sample"}) for n in names]
    assert lines[0].startswith(names[0]) and lines[1].startswith(names[1])
    assert "…" in lines[2] and lines[2].split(" gen")[0].endswith("_seed=7") and len(lines[2].split(" gen")[0]) == 60
    result = SweepResult(Path("runs/x"), "x", "sqlite:///x.db")
    result.arms = {n: {"quality/fid": 1.0} for n in names}
    text = summary_text(result)
    assert all(f"\n{n} " in text for n in names)


def test_corrector_params_follow_their_corrector():
    """An arm that switches corrector does not inherit the base corrector's settings (they are
    unknown to the other corrector); params_for tunes a corrector in every arm that uses it."""
    from sccl.correctors.registry import build_corrector

    raw = {"corrector": {"name": "physics", "params": {"assist_cap_g": 0.3}},
           "arms": [{"name": "plain", "corrector.name": "none"}, {"name": "phys"},
                    {"name": "own", "corrector.name": "ideal", "corrector.params": {"gamma": 0.5}}]}
    arms = {a.name: a.config.corrector for a in expand_arms(config_from_dict(raw))}
    assert arms["plain"].params == {} and arms["phys"].params == {"assist_cap_g": 0.3}
    assert arms["own"].params == {"gamma": 0.5}
    build_corrector("none", {**arms["plain"].params, "policy": "reject"}).close()  # no "unknown setting"

    raw = {"corrector": {"name": "none"},
           "arms": [{"name": "plain"}, {"name": "phys", "corrector.name": "physics"},
                    {"name": "mine", "corrector.name": "physics", "corrector.params.assist_cap_g": 0.1}]}
    cfg = config_from_dict(raw, ["corrector.params_for.physics.assist_cap_g=0.2",
                                 "corrector.params_for.physics.gain_scale=0.9"])
    arms = {a.name: a.config.corrector for a in expand_arms(cfg)}
    assert arms["plain"].params == {}
    assert arms["phys"].params == {"assist_cap_g": 0.2, "gain_scale": 0.9}
    assert arms["mine"].params == {"assist_cap_g": 0.1, "gain_scale": 0.9}  # the arm's own setting wins
    with pytest.raises(ConfigError, match=r"corrector\.params_for\.physics': expected a mapping"):
        config_from_dict(raw, ["corrector.params_for.physics=3"])
