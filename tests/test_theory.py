"""Closed-form collapse checks of the Gaussian toy, run through the loop (issue 7).

Two layers, so that the Monte Carlo is both faithful and affordable:

1. ``test_kernel_reproduces_the_full_loop``: a real sweep (``run_config``, Ray disabled, a
   SQLite MLflow store in a temporary directory) of a few seeds per regime; the fitted
   Gaussian of every arm's last checkpoint, and the ``toy/w2`` the loop logged, must equal
   *bit for bit* what :func:`loop_kernel` computes for the same config and seed.
2. :func:`loop_kernel` runs :class:`sccl.loop.kernel.GenerationKernel` — the very generation
   loop the arm runner wraps with checkpoints, archives and tracking — without that I/O.
   The Monte Carlo over hundreds of seeds runs on it (a full arm costs ~0.25 s a generation of
   I/O and tracking on this machine; the kernel a few ms).

Tolerances are z-tests from the Monte-Carlo standard error: |mean − expected| < Z·SE with
Z = 4 (a false failure has probability ~6e-5 per check under the closed form; the seeds are
fixed, so a run either always passes or always fails). Nothing is hand-tuned.

Indexing. The theory's recursion starts from the distribution that generated the first
sample, σ²₋₁ = 1 here. In the loop, generation 0 is already a *fit*, on n real draws from
N(0, 1); with ``regime: replace`` and λ = 1 every later generation g fits N = n points drawn
from generation g−1. So the loop's generation g is the theory's k = g + 1 refits:

* ddof = 0 (MLE):  σ̂²_g = σ̂²_{g−1}·χ²_{N−1}/N  ⇒  E[σ̂²_g] = ((N−1)/N)^(g+1),
  E[log σ̂²_g] = (g+1)·(ψ((N−1)/2) + log(2/N));
* ddof = 1:        σ̂²_g = σ̂²_{g−1}·χ²_{N−1}/(N−1)  ⇒  E[σ̂²_g] = 1,
  E[log σ̂²_g] = (g+1)·(ψ((N−1)/2) + log(2/(N−1))) ≈ −(g+1)/N  (collapse almost surely),

using E[log χ²_ν] = ψ(ν/2) + log 2 and independence of the χ² factors (a fresh seed per
generation: ``derive_seed``).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from scipy.special import digamma

from sccl.generators import load_generator
from sccl.generators.registry import build_generator
from sccl.loop.config import ExperimentConfig, config_from_dict
from sccl.loop.kernel import GenerationKernel, derive_seed, generator_config
from sccl.loop.realdata import load_real_data
from sccl.loop.tasks import build_task
from sccl.loop.store import read_json, read_jsonl
from sccl.metrics.toy import gaussian_w2, toy_metrics

Z = 4.0  #: z-score bound of every Monte-Carlo check

BASE = {
    "name": "theory",
    "seed": 0,
    "generations": 10,
    "synthetic_ratio": 1.0,
    "regime": "replace",
    "data": {"kind": "gaussian", "dim": 1, "n": 10, "heldout_n": 10},
    "generator": {"name": "gaussian", "params": {"ddof": 0}},
    "corrector": {"name": "none"},
    "train": {"steps_gen0": 1, "steps_per_generation": 1, "finetune": False},
    # evaluated at the last generation only: the Monte Carlo reads the fitted parameters
    "eval": {"num_samples": 200, "every": 1000, "gif": False, "plots": False},
    "ray": {"enabled": False, "correction_workers": 0},
}


def make_config(**over) -> ExperimentConfig:
    raw = {**BASE, **over}
    for key in ("data", "generator", "corrector", "train", "eval", "ray"):
        raw[key] = {**BASE[key], **over.get(key, {})}
    return config_from_dict(raw)


def loop_kernel(cfg: ExperimentConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """The fitted (mean, cov) of generations 0..G of one arm, computed by the arm runner's own
    generation kernel (sample → correct → mix → fit, seeds from ``derive_seed``), without any I/O."""
    kernel = GenerationKernel(cfg, build_task(cfg))
    return [(out.generator.mean.copy(), out.generator.cov.copy()) for out in kernel.generations()]


def monte_carlo(cfg: ExperimentConfig, seeds: range) -> tuple[np.ndarray, np.ndarray]:
    """Fitted means (S, G+1, D) and covariances (S, G+1, D, D) over seeds."""
    runs = [loop_kernel(dataclasses.replace(cfg, seed=s)) for s in seeds]
    means = np.array([[m for m, _ in r] for r in runs])
    covs = np.array([[c for _, c in r] for r in runs])
    return means, covs


def assert_mean(samples: np.ndarray, expected, what: str) -> None:
    """Per-column z-test: |mean − expected| < Z·SE, SE = sample sd / sqrt(S)."""
    samples = np.asarray(samples, np.float64)
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / math.sqrt(samples.shape[0])
    z = np.abs(mean - np.asarray(expected)) / se
    assert np.all(z < Z), f"{what}: MC mean {mean} vs closed form {expected} (SE {se}, |z| {z})"


# --------------------------------------------------------------------- 1. kernel == loop
def test_kernel_reproduces_the_full_loop(tmp_path):
    from sccl.loop.sweep import run_config

    g_last = 6
    cfg = make_config(
        generations=g_last, output_dir=str(tmp_path / "run"),
        mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        arms=[
            {"name": "replace", "regime": "replace"},
            {"name": "accumulate", "regime": "accumulate", "generator.params.ddof": 1},
            {"name": "ideal", "regime": "augment", "synthetic_ratio": 0.5, "data.dim": 2, "data.n": 20,
             "corrector.name": "ideal", "corrector.params.gamma": 1.0},
        ],
        grid={"seed": [0, 1]},
    )
    result = run_config(cfg)
    assert not result.failed and len(result.arms) == 6
    from sccl.loop.config import expand_arms

    for spec in expand_arms(cfg):
        arm_dir = tmp_path / "run" / "arms" / spec.name
        state = read_json(arm_dir / "state.json")
        assert state["completed"] == g_last
        loop_gen = load_generator(arm_dir / f"gen_{g_last:03d}" / state["checkpoint"])
        mean, cov = loop_kernel(spec.config)[-1]
        assert np.array_equal(loop_gen.mean, mean) and np.array_equal(loop_gen.cov, cov), spec.name
        # and the W2 the loop logged is the toy metric of that very model
        c = spec.config
        kernel_gen = build_generator("gaussian", generator_config(c))
        kernel_gen.mean, kernel_gen.cov = mean, cov
        samples = kernel_gen.sample(c.eval.num_samples, None, derive_seed(c.seed, g_last, "eval"))
        real = load_real_data(c.data, c.seed)
        logged = read_jsonl(arm_dir / "metrics.jsonl")[-1]
        assert logged["toy/w2"] == toy_metrics(samples, real.target_mean, real.target_cov)["toy/w2"]


# ------------------------------------------------------- 2. replace regime, closed forms
N_REFIT = 10
G_REFIT = 10
SEEDS_REFIT = range(600)


@functools.lru_cache(maxsize=None)
def _refit_variances(ddof: int) -> np.ndarray:
    cfg = make_config(generations=G_REFIT, regime="replace", synthetic_ratio=1.0,
                      data={"n": N_REFIT}, generator={"params": {"ddof": ddof}})
    _, covs = monte_carlo(cfg, SEEDS_REFIT)
    return covs[:, :, 0, 0]  # (S, G+1): σ̂²_g


def test_replace_mle_variance_decays_geometrically():
    """ddof=0: E[σ̂²_g] = ((N−1)/N)^(g+1), E[log σ̂²_g] = (g+1)(ψ((N−1)/2) + log(2/N))."""
    var = _refit_variances(0)
    k = np.arange(G_REFIT + 1) + 1
    n = N_REFIT
    assert_mean(var, ((n - 1) / n) ** k, "E[σ²] (ddof=0)")
    assert_mean(np.log(var), k * (digamma((n - 1) / 2) + math.log(2 / n)), "E[log σ²] (ddof=0)")


def test_replace_unbiased_variance_keeps_its_mean_but_log_collapses():
    """ddof=1: E[σ̂²_g] = 1 for all g, yet E[log σ̂²_g] = (g+1)(ψ((N−1)/2) + log(2/(N−1))) ≈ −(g+1)/N."""
    var = _refit_variances(1)
    k = np.arange(G_REFIT + 1) + 1
    n = N_REFIT
    assert_mean(var, np.ones(G_REFIT + 1), "E[σ²] (ddof=1)")
    expected_log = k * (digamma((n - 1) / 2) + math.log(2 / (n - 1)))
    assert_mean(np.log(var), expected_log, "E[log σ²] (ddof=1)")
    # per refit ψ((N−1)/2) + log(2/(N−1)) = −1/(N−1) − 1/(3(N−1)²) + O(N⁻⁴) ≈ −1/N: strictly negative
    per_refit = expected_log[0]
    assert per_refit < 0 and abs(per_refit + 1 / (n - 1) + 1 / (3 * (n - 1) ** 2)) < 1 / (n - 1) ** 4
    # the median collapses although the mean does not: most seeds end below σ² = 1
    assert np.mean(var[:, -1] < 1.0) > 0.5


# -------------------------------------------------- 3. accumulate vs replace (Gerstgrasser)
N_ACC = 20
G_ACC = 20
SEEDS_ACC = range(300)


@functools.lru_cache(maxsize=None)
def _regime(regime: str) -> tuple[np.ndarray, np.ndarray]:
    cfg = make_config(generations=G_ACC, regime=regime, synthetic_ratio=1.0,
                      data={"n": N_ACC}, generator={"params": {"ddof": 1}})
    means, covs = monte_carlo(cfg, SEEDS_ACC)
    return means[:, :, 0], covs[:, :, 0, 0]


def test_replace_error_grows_linearly_accumulate_stays_bounded():
    """Target N(0, 1), unbiased refits (ddof=1), N = n = 20 points a generation, λ = 1.

    The fitted mean is a martingale: μ_g − μ_{g−1} has conditional variance σ̂²_{g−1}/n
    (replace: the new mean is that of n fresh draws) or σ̂²_{g−1}/(n (g+1)²) (accumulate:
    the n new draws join g·n earlier points and n real ones). Hence

    * replace:    n·E[μ_g²] = 1 + Σ_{h<g} E[σ̂²_h] = g + 1   (grows without bound);
    * accumulate: n·E[μ_g²] = 1 + Σ_{h=1..g} E[σ̂²_{h−1}]/(h+1)² ≤ (π²/6)·max(1, max_h E[σ̂²_h])
      (Gerstgrasser et al. 2024's π²/6 bound)."""
    mu_r, var_r = _regime("replace")
    mu_a, var_a = _regime("accumulate")
    g = np.arange(G_ACC + 1)
    assert_mean(N_ACC * mu_r**2, g + 1.0, "replace n·E[μ²]")
    # accumulate: the exact martingale identity with the per-seed σ̂² path ...
    weights = 1.0 / (np.arange(1, G_ACC + 1) + 1.0) ** 2
    resid = N_ACC * mu_a[:, 1:] ** 2 - 1.0 - np.cumsum(var_a[:, :-1] * weights, axis=1)
    assert_mean(resid, np.zeros(G_ACC), "accumulate martingale residual")
    # ... and the bound, which replace exceeds from the second generation on
    bound = math.pi**2 / 6 * max(1.0, float(var_a.mean(0).max()))
    acc = N_ACC * mu_a**2
    se = acc.std(0, ddof=1) / math.sqrt(acc.shape[0])
    assert np.all(acc.mean(0) - Z * se < bound), (acc.mean(0), bound)
    rep = N_ACC * mu_r**2
    rep_se = rep.std(0, ddof=1) / math.sqrt(rep.shape[0])
    assert np.all(rep.mean(0)[2:] - Z * rep_se[2:] > bound)
    # the distance to the target: W2² = μ² + (σ − 1)²; replace ends far above accumulate
    w2_r = np.sqrt(mu_r**2 + (np.sqrt(var_r) - 1.0) ** 2)
    w2_a = np.sqrt(mu_a**2 + (np.sqrt(var_a) - 1.0) ** 2)
    d = w2_r[:, -1] - w2_a[:, -1]
    assert d.mean() > Z * d.std(ddof=1) / math.sqrt(d.size)
    late = w2_a[:, -1] - w2_a[:, G_ACC // 2]  # accumulate barely moves in the second half
    early = w2_r[:, -1] - w2_r[:, G_ACC // 2]
    assert (early - late).mean() > Z * (early - late).std(ddof=1) / math.sqrt(late.size)


# ---------------------------------------------------------- 4. ideal corrector strength γ
GAMMAS = (0.0, 0.1, 1.0, 5.0)
G_GAMMA = 40
SEEDS_GAMMA = range(100)


@functools.lru_cache(maxsize=None)
def _gamma_long_run() -> np.ndarray:
    """Per γ and seed: the mean over generations G/2..G of the exact W2 to the target."""
    base = make_config(generations=G_GAMMA, regime="augment", synthetic_ratio=0.5,
                       data={"dim": 2, "n": 50}, corrector={"name": "ideal"})
    eye, zero = np.eye(2), np.zeros(2)
    long_run = []
    for gamma in GAMMAS:
        cfg = dataclasses.replace(base, corrector=dataclasses.replace(base.corrector, params={"gamma": gamma}))
        means, covs = monte_carlo(cfg, SEEDS_GAMMA)
        late = slice(G_GAMMA // 2, None)
        w2 = np.array([[gaussian_w2(m, c, zero, eye) for m, c in zip(ms[late], cs[late])]
                       for ms, cs in zip(means, covs)])
        long_run.append(w2.mean(1))
    return np.array(long_run)


def test_stronger_ideal_correction_never_raises_long_run_w2():
    """The paper's toy (2-D N(0, I), n = 50, λ = 0.5, augment, MLE fits) with the ideal
    corrector π_γ: long-run W2 (mean over generations G/2..G of the exact W2 between the
    fitted Gaussian and the target, then over seeds) is non-increasing in γ: for each
    consecutive pair the paired difference is not significantly positive (< Z·SE), and
    γ = 5 is significantly below γ = 0. Seeds are shared across γ (common random numbers)."""
    long_run = _gamma_long_run()  # (γ, S)
    for i in range(len(GAMMAS) - 1):
        d = long_run[i + 1] - long_run[i]
        assert d.mean() < Z * d.std(ddof=1) / math.sqrt(d.size), (GAMMAS[i], GAMMAS[i + 1], long_run.mean(1))
    d = long_run[-1] - long_run[0]
    assert d.mean() < -Z * d.std(ddof=1) / math.sqrt(d.size), long_run.mean(1)


# ------------------------------------------------------------- figures for docs/RESULTS.md
def _summary() -> None:  # pragma: no cover - `python tests/test_theory.py` prints the MC figures
    def row(label, samples, expected):
        m, se = samples.mean(), samples.std(ddof=1) / math.sqrt(samples.size)
        print(f"| {label} | {m:.4f} ± {se:.4f} | {expected:.4f} | {(m - expected) / se:+.2f} |")

    n = N_REFIT
    print(f"replace, N = n = {n}, λ = 1, {len(SEEDS_REFIT)} seeds (loop generation g = k − 1)")
    print("| quantity | MC mean ± SE | closed form | z |\n|---|---|---|---|")
    for ddof in (0, 1):
        var = _refit_variances(ddof)
        for g in (0, 4, G_REFIT):
            k = g + 1
            ev = ((n - 1) / n) ** k if ddof == 0 else 1.0
            el = k * (digamma((n - 1) / 2) + math.log(2 / (n - ddof)))
            row(f"ddof={ddof}, g={g}: σ̂²", var[:, g], ev)
            row(f"ddof={ddof}, g={g}: log σ̂²", np.log(var[:, g]), el)
    print(f"\naccumulate vs replace, ddof=1, N = n = {N_ACC}, {len(SEEDS_ACC)} seeds")
    print("| g | replace n·E[μ²] (closed form g+1) | accumulate n·E[μ²] | π²/6·max E[σ̂²] | "
          "replace E[W2] | accumulate E[W2] |\n|---|---|---|---|---|---|")
    mu_r, var_r = _regime("replace")
    mu_a, var_a = _regime("accumulate")
    bound = math.pi**2 / 6 * max(1.0, float(var_a.mean(0).max()))
    w2_r = np.sqrt(mu_r**2 + (np.sqrt(var_r) - 1.0) ** 2)
    w2_a = np.sqrt(mu_a**2 + (np.sqrt(var_a) - 1.0) ** 2)
    s = math.sqrt(len(SEEDS_ACC))
    for g in (0, 1, 2, 5, 10, G_ACC):
        r, a = N_ACC * mu_r[:, g] ** 2, N_ACC * mu_a[:, g] ** 2
        print(f"| {g} | {r.mean():.3f} ± {r.std(ddof=1) / s:.3f} | {a.mean():.3f} ± {a.std(ddof=1) / s:.3f} | "
              f"{bound:.3f} | {w2_r[:, g].mean():.3f} ± {w2_r[:, g].std(ddof=1) / s:.3f} | "
              f"{w2_a[:, g].mean():.3f} ± {w2_a[:, g].std(ddof=1) / s:.3f} |")
    lr = _gamma_long_run()
    print(f"\nideal corrector, 2-D toy (n=50, λ=0.5, augment), mean W2 over generations "
          f"{G_GAMMA // 2}..{G_GAMMA}, {len(SEEDS_GAMMA)} seeds")
    print("| γ | long-run W2 (mean ± SE) | paired difference to γ=0 |\n|---|---|---|")
    for gamma, w in zip(GAMMAS, lr):
        d = w - lr[0]
        print(f"| {gamma:g} | {w.mean():.4f} ± {w.std(ddof=1) / math.sqrt(w.size):.4f} | "
              f"{d.mean():+.4f} ± {d.std(ddof=1) / math.sqrt(d.size):.4f} |")


if __name__ == "__main__":  # pragma: no cover
    _summary()
