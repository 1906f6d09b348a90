"""Can the honest search be distilled into a policy that needs no rollouts? Prints one JSON object.

Why: the speed target of issue 15 leaves room for about two rollout steps per committed step,
and every reactive law measured keeps at most walk and run (bench/reactive_balance.py). What is
left is a policy that acts from the current state, like a reactive law, but has learned what
the search finds by lookahead. The cheapest such policy is behaviour cloning of the search
itself (SAMCON-guided learning, Liu et al. 2016, in its simplest form) with DAgger (Ross et al.
2011) against the drift of a cloned policy into states the search never visited.

Three commands:

* ``collect OUT.npz SOURCE``: run the honest search (the preset ``sampling_low_kd_short``:
  nothing external) over SOURCE (``bundled``, or a directory of DeepMimic clips, cut into
  ``--seconds`` segments; ``--shard i/n`` takes every n-th from the i-th) and record, per
  searched window, the state features (:func:`features`) and the offsets the search committed.
  With ``--policy P.npz`` it is a DAgger round: the search still labels every window from the
  state reached, but the window is executed with the policy's offsets (with probability
  1 - ``--expert-share``), so the data covers the states the policy drives the body into.
* ``train OUT.npz DATA.npz ...``: fit a ridge regression and a small MLP (two hidden layers of
  256, ELU; 10 % of the windows held out) from features to offsets; writes both, the feature
  normalisation and the held-out errors.
* ``evaluate POLICY.npz``: the policy as the controller: every window's offsets come from the
  policy, no rollout at all (``--kind ridge|mlp|zero``; zero = plain low-damping tracking),
  on the 8 named bundled clips (never in the training data unless collected from ``bundled``)
  or on ``--source DIR`` segments. Reports clips kept, fall times and speed.

Usage: ``python bench/distill_search.py collect|train|evaluate ...`` (``--help`` per command).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

# This folder holds scripts named like packages (loop.py, metrics.py): keep them from shadowing.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import correction  # noqa: E402  (bench/correction.py: presets, rows, target clips)

PRESET = "sampling_low_kd_short"
HIDDEN = 256
#: the library's SamplingPlanner, kept when a subclass is swapped in (one process may swap twice)
_SEARCH = None


def _heading_inverse(q: np.ndarray) -> np.ndarray:
    """Rotation taking world vectors into the frame of q's heading (its yaw about y)."""
    from sccl.motion import quaternion as quat

    forward = quat.to_matrix(q)[:, 2].copy()
    forward[1] = 0.0
    n = float(np.linalg.norm(forward))
    if n < 1e-6:
        return np.eye(3)
    forward /= n
    side = np.array([forward[2], 0.0, -forward[0]])
    return np.column_stack((side, [0.0, 1.0, 0.0], forward)).T


def features(planner, k0: int) -> np.ndarray:
    """The policy's input at window start k0, from the simulation state and the reference.

    Root errors (orientation, position, linear and angular velocity) in the reference heading's
    frame; the reference root velocities and height change over the coming window; each searched
    joint's rotation and velocity error; the actual ankle heights and the reference feet's lowest
    points now and at the window's end (contact phase); the offsets committed for the last window."""
    from sccl.motion import quaternion as quat

    p, cid, body, ref, sim = planner.p, planner.cid, planner.body, planner.ref, planner.sim
    k0 = min(k0, planner.n - 1)
    k1 = min(k0 + planner.window, planner.n - 1)
    pos, orn = p.getBasePositionAndOrientation(body, physicsClientId=cid)
    vel, ang = p.getBaseVelocity(body, physicsClientId=cid)
    h = _heading_inverse(ref.root_rot[k0])
    q_ref = np.asarray(ref.root_rot[k0])
    q_err = quat.multiply(quat.conjugate(q_ref[None]), np.asarray(orn)[None])
    rot_err = quat.to_matrix(q_ref) @ quat.to_rotvec(quat.canonical(q_err))[0]
    parts = [h @ rot_err, h @ (np.asarray(pos) - ref.root_pos[k0]), h @ (np.asarray(vel) - ref.root_lin_vel[k0]),
             h @ (np.asarray(ang) - ref.root_ang_vel[k0]), h @ ref.root_lin_vel[k1], h @ ref.root_ang_vel[k1],
             [ref.root_pos[k1][1] - pos[1]]]
    states = p.getJointStatesMultiDof(body, sim._joints, physicsClientId=cid)
    by_slot = {slot: st for slot, st in zip(sim._slots, states)}
    for i in planner.sph:
        q, w = by_slot[("s", i)][0], by_slot[("s", i)][1]
        err = quat.multiply(quat.conjugate(ref.joint_rots[k0, i][None]), np.asarray(q)[None])
        parts += [quat.to_rotvec(quat.canonical(err))[0], np.asarray(w) - ref.joint_vels[k0, i]]
    for i in planner.rev:
        a, w = by_slot[("r", i)][0][0], by_slot[("r", i)][1][0]
        parts.append([a - ref.joint_angles[k0, i], w - ref.joint_angle_vels[k0, i]])
    ankles = p.getLinkStates(body, planner.distill_feet, physicsClientId=cid)
    parts += [[st[4][1] for st in ankles], planner.distill_ref_low[k0], planner.distill_ref_low[k1],
              planner.committed_offsets]
    return np.concatenate([np.ravel(np.asarray(x, dtype=np.float64)) for x in parts])


class Policy:
    """Offsets from features: ridge, MLP (numpy forward pass) or zero, clipped to the range seen."""

    def __init__(self, path: str, kind: str) -> None:
        data = np.load(path)
        self.kind = kind
        self.mu, self.sd, self.limit = data["mu"], data["sd"], data["limit"]
        self.ridge = data["ridge"]
        self.layers = [(data[f"w{i}"], data[f"b{i}"]) for i in range(3)]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "zero":
            return np.zeros_like(self.limit)
        z = (x - self.mu) / self.sd
        if self.kind == "ridge":
            y = np.append(z, 1.0) @ self.ridge
        else:
            y = z
            for i, (w, b) in enumerate(self.layers):
                y = y @ w + b
                if i < len(self.layers) - 1:
                    y = np.where(y > 0.0, y, np.expm1(np.minimum(y, 0.0)))
        return np.clip(y, -self.limit, self.limit)


def install_planner(mode: str, policy: Policy | None = None, expert_share: float = 0.0, seed: int = 0) -> list:
    """Swap a recording / policy-driven subclass in for ``SamplingPlanner`` (the simulator
    imports it at each tracking pass); returns the list the (features, offsets) records go to."""
    from sccl.motion.kinematics import body_lowest_points, forward_kinematics_matrices
    from sccl.motion import quaternion as quat
    from sccl.motion.skeleton import load_skeleton
    from sccl.simulators import sampling

    global _SEARCH
    if _SEARCH is None:
        _SEARCH = sampling.SamplingPlanner
    records: list = []
    rng = np.random.default_rng(seed)

    class DistillPlanner(_SEARCH):
        def __init__(self, sim, ref, ref_positions, seed=0, horizon_s=None) -> None:
            super().__init__(sim, ref, ref_positions, seed=seed, horizon_s=horizon_s)
            sk = load_skeleton()
            self.distill_feet = [sk.index("right_ankle"), sk.index("left_ankle")]
            kin = forward_kinematics_matrices(ref.root_pos, quat.to_matrix(ref.root_rot),
                                              quat.to_matrix(ref.joint_rots), ref.joint_angles)
            self.distill_ref_low = body_lowest_points(kin)[:, self.distill_feet]

        def plan(self, k0, base_targets, vel_targets) -> None:
            x = features(self, k0)
            if mode == "policy":  # no rollout: the policy's offsets for the window
                self.windows += 1
                self._commit(policy(x), k0, base_targets)
                return
            fell, bad = self.all_fell_windows, self.bad_windows
            super().plan(k0, base_targets, vel_targets)
            if self.all_fell_windows == fell and self.bad_windows == bad:  # the search found a way
                records.append((x, self.committed_offsets.copy()))
            if policy is not None and rng.random() >= expert_share:  # DAgger: execute the policy's
                self._commit(policy(x), k0, base_targets)

        def _commit(self, offsets, k0, base_targets) -> None:
            for i, t in enumerate(self._targets(offsets, k0, self.window, base_targets), start=1):
                self.committed[k0 + i] = t
            self.committed_offsets = np.asarray(offsets, dtype=np.float64).copy()

    sampling.SamplingPlanner = DistillPlanner
    return records


def segments(source: str, seconds: float, shard: tuple[int, int]) -> list:
    """The clips of `source` (``bundled`` or a directory) cut into `seconds` segments, the
    shard's share of them (every n-th from the i-th)."""
    from sccl.motion.deepmimic import read_directory

    clips = [rc.motion for rc in (read_directory() if source == "bundled" else read_directory(source))]
    out = []
    for m in clips:
        length = max(2, int(round(seconds * m.fps)))
        for start in range(0, max(1, m.num_frames - length // 2), length):
            part = m.slice(start, min(m.num_frames, start + length))
            if part.num_frames >= int(0.5 * m.fps):
                # the file name, not the content label: result rows are keyed by label
                out.append(part.replace(name=f"{m.name}@{start}", label=f"{m.name}@{start}"))
    i, n = shard
    return out[i::n]


def _save_records(path: str, records: list) -> None:
    x = np.array([r[0] for r in records]) if records else np.zeros((0, 0))
    y = np.array([r[1] for r in records]) if records else np.zeros((0, 0))
    np.savez(path, X=x, Y=y)


def collect(args) -> dict:
    from sccl.correctors import build_corrector

    policy = Policy(args.policy, args.kind) if args.policy else None
    records = install_planner("record", policy, args.expert_share, args.seed)
    clips = segments(args.source, args.seconds, tuple(int(v) for v in args.shard.split("/")))
    config = correction.MODES[PRESET] | {"sampling_seed": args.seed}
    corrector = build_corrector("physics", config)
    t0 = time.perf_counter()
    kept = 0
    for i, clip in enumerate(clips):
        kept += corrector.correct([clip], seed=0).status[0] == "ok"
        if i % 10 == 9 or i == len(clips) - 1:
            _save_records(args.out, records)  # partial results survive an interrupted run
            print(f"collect: {i + 1}/{len(clips)} segments, {len(records)} windows, {kept} kept, "
                  f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    corrector.close()
    return {"segments": len(clips), "kept": kept, "windows": len(records), "seconds": round(time.perf_counter() - t0)}


def train(args) -> dict:
    import torch

    x = np.concatenate([np.load(f)["X"] for f in args.data])
    y = np.concatenate([np.load(f)["Y"] for f in args.data])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    z = (x - mu) / sd
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    held, fit = order[: len(x) // 10], order[len(x) // 10:]
    a = np.c_[z, np.ones(len(z))]
    ridge = np.linalg.solve(a[fit].T @ a[fit] + args.ridge * np.eye(a.shape[1]), a[fit].T @ y[fit])
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.ELU(), torch.nn.Linear(HIDDEN, HIDDEN),
                              torch.nn.ELU(), torch.nn.Linear(HIDDEN, y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=args.weight_decay)
    zt, yt = torch.tensor(z, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    best, best_state = math.inf, None
    for _ in range(args.epochs):
        for b in range(0, len(fit), 256):
            idx = torch.as_tensor(fit[b:b + 256])
            loss = ((net(zt[idx]) - yt[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        rng.shuffle(fit)
        with torch.no_grad():
            held_mse = float(((net(zt[held]) - yt[held]) ** 2).mean())
        if held_mse < best:  # early stopping on the held-out windows
            best, best_state = held_mse, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    weights = {f"w{i}": m.weight.detach().numpy().T.copy() for i, m in enumerate(linear)}
    weights |= {f"b{i}": m.bias.detach().numpy().copy() for i, m in enumerate(linear)}
    np.savez(args.out, mu=mu, sd=sd, limit=np.abs(y).max(0), ridge=ridge, **weights)
    warm = x[:, -y.shape[1]:]  # the last window's offsets: what the search's warm start begins from
    return {"windows": len(x), "features": x.shape[1], "offsets": y.shape[1],
            # windows where the search committed exactly zero: its plain-tracking candidate won
            "zero_label_share": float(np.mean(np.all(y == 0.0, axis=1))),
            "held_out_mse": {"zero": float((y[held] ** 2).mean()),
                             "last_window": float(((warm[held] - y[held]) ** 2).mean()),
                             "ridge": float(((a[held] @ ridge - y[held]) ** 2).mean()), "mlp": best}}


def evaluate(args) -> dict:
    policy = Policy(args.policy, args.kind)
    install_planner("policy", policy)
    if args.source:
        clips = segments(args.source, args.seconds, tuple(int(v) for v in args.shard.split("/")))
    else:
        from sccl.motion.deepmimic import read_directory

        clips = [m for m in (rc.motion for rc in read_directory()) if m.label in correction.TARGET_CLIPS]
    config = correction.MODES[PRESET] | {"sampling_restarts": 0}
    out = correction.run_mode("policy", config, clips)
    rows = out["rows"]
    return {"kind": args.kind, "kept": sum(r["status"] == "ok" for r in rows.values()), "clips_run": len(rows),
            "clips": {k: {"status": r["status"], "fall_time_s": r["fall_time_s"],
                          "root_relative_error_mm": r["root_relative_error_mm"], "residual_g": r["residual_g"]}
                      for k, r in rows.items()},
            "mean_fall_time_s": correction._mean(r["fall_time_s"] for r in rows.values()),
            "realtime_factor_per_core_cpu": out["speed"]["realtime_factor_per_core_cpu"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="run the search and record (features, offsets) per window")
    c.add_argument("out")
    c.add_argument("source", help="'bundled' or a directory of DeepMimic clips")
    c.add_argument("--seconds", type=float, default=3.0)
    c.add_argument("--shard", default="0/1", metavar="I/N")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--policy", default=None, help="DAgger: execute this policy's offsets")
    c.add_argument("--kind", default="mlp", choices=("mlp", "ridge", "zero"))
    c.add_argument("--expert-share", type=float, default=0.0, help="DAgger: share of windows executed by the search")
    t = sub.add_parser("train", help="fit ridge and MLP policies")
    t.add_argument("out")
    t.add_argument("data", nargs="+")
    t.add_argument("--epochs", type=int, default=100)
    t.add_argument("--ridge", type=float, default=1.0)
    t.add_argument("--weight-decay", type=float, default=1e-4)
    e = sub.add_parser("evaluate", help="the policy as the controller, no rollouts")
    e.add_argument("policy")
    e.add_argument("--kind", default="mlp", choices=("mlp", "ridge", "zero"))
    e.add_argument("--source", default=None, help="a directory of clips instead of the 8 named bundled clips")
    e.add_argument("--seconds", type=float, default=3.0)
    e.add_argument("--shard", default="0/1", metavar="I/N")
    args = parser.parse_args()
    result = {"collect": collect, "train": train, "evaluate": evaluate}[args.command](args)
    print(json.dumps({"command": args.command, **result}, indent=1))


if __name__ == "__main__":
    main()
