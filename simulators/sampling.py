"""Sampling-based refinement of the PD targets (``assist_mode="sampling"``): honest balance by search.

Why: a body whose root is not held can stay up only by changing its *pose* — where it puts
its feet, how it leans — so that the ground pushes it where the reference goes. Clipping a
root wrench onto the contacts after the fact (``assist_mode="contact"``) does not do that
(it falls on every bundled clip). Here the controller stays plain stable-PD joint tracking
with **no external force at all**, and a short-horizon sampler picks offsets to the PD
targets of the balance-relevant joints (SAMCON, Liu et al. 2010/2015; MuJoCo MPC predictive
sampling, Howell et al. 2022).

Per window of ``sampling_window_s``:

1. ``saveState`` at the window start;
2. K candidate offset vectors (one rotation vector per spherical joint, one angle per knee;
   constant over the rollout) are drawn around the mean — candidate 0 is the mean itself,
   candidate 1 is zero (plain tracking) — and each is rolled out for ``sampling_horizon_s``
   from the saved state (``restoreState``);
3. each rollout is scored against the reference at a few points along the horizon: mean
   global body-position error (which holds root position, end effectors and pose), root
   orientation, root linear and angular velocity; a rollout that falls gets a large cost;
4. optionally (``sampling_iterations`` > 1) the mean and spread are refitted to the best
   ``sampling_elites`` (cross-entropy) and sampled again;
5. the state is restored and the best offsets are committed for the window; the main
   tracking loop simulates that window once more, so contact accounting, recording and fall
   checks see only the committed rollout. The best offsets (times ``sampling_warm_decay``)
   are the next window's mean (warm start).

Nothing but joint motors acts on the body, so the residual measured by
:mod:`simulators.contact` is zero by construction: the only external forces are gravity and
the engine's contact forces. The exception is a declared residual budget
(``sampling_assist_cap_g`` > 0): the legacy root constraint at that cap, in the rollouts and
in the committed pass, accounted like the legacy assist. The price is time: about K × horizon / window rollout steps
per committed step (see docs/PHYSICS.md for the measured frontier).

Settings measured and left off by default, because none improved the search (one to three seeds
each; docs/PHYSICS.md, "What did not make the honest search faster or gentler"): committing the
warm-started mean when it already tracks well (``sampling_accept_cost``), rollouts on a coarser
physics rate (``sampling_rollout_substeps``), restarts with new seeds
(``sampling_restart_reseed``), a yaw-rate cost term (``sampling_yaw_rate_scale``), a ramp
between windows' offsets (``sampling_ramp_s``) and a price on their change
(``sampling_change_scale_rad``).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from sccl.motion import quaternion as quat
from sccl.motion.skeleton import REVOLUTE_JOINTS, SPHERICAL_JOINTS
from sccl.simulators.contact import any_in_contact

if TYPE_CHECKING:  # the simulator imports this module lazily; no cycle at run time
    from sccl.simulators.humanoid import HumanoidSim
    from sccl.simulators.reference import Reference

log = logging.getLogger(__name__)

#: Cost added to a rollout that falls (root below this share of the reference root height,
#: or mean body error above the fall threshold), plus its remaining checkpoints at the
#: worst error: falling always loses to staying up.
FALL_COST = 1e3
#: A rollout counts as fallen when its root sinks below this share of the reference root height.
FALL_ROOT_SHARE = 0.5
#: Weight of the horizon's last checkpoint against the intermediate ones.
TERMINAL_WEIGHT = 2.0
#: Cost scales: mean body-position error (m), root orientation error (rad), root linear (m/s)
#: and angular (rad/s) velocity error, root-relative body error (m); each term is (error / scale)².
#: Measured on walk/run/kick/jump/punch/dance_a: a tighter orientation scale (0.15 rad) and the
#: angular-velocity term (3 rad/s) kept walk and run where (0.3, 10) did not; the body and
#: velocity scales (0.1 vs 0.2 m, 3 vs 1 m/s) moved fall times by < 0.3 s either way.
#: A root-relative body-error term has its own setting, ``sampling_pose_scale_m``.
COST_SCALES = {"body": 0.1, "rot": 0.15, "vel": 3.0, "ang": 3.0}


class SamplingPlanner:
    """Chooses PD-target offsets window by window by rolling out candidates in the same client.

    Args:
        sim: the :class:`simulators.humanoid.HumanoidSim` (its client, body, joints and gains).
        ref: the reference at the control rate (:class:`simulators.reference.Reference`).
        ref_positions: (N, 15, 3) reference body-origin positions at the control samples.
        seed: seed of the candidate noise (the result is deterministic for a given seed).
        horizon_s: rollout length (s); default ``sampling_horizon_s`` (restarts lengthen it).
    """

    def __init__(self, sim: "HumanoidSim", ref: "Reference", ref_positions: np.ndarray, seed: int = 0,
                 horizon_s: float | None = None) -> None:
        cfg = sim.config
        self.sim = sim
        self.p, self.cid, self.body = sim._p, sim._cid, sim.body
        self.ref = ref
        self.ref_positions = ref_positions
        self.n = ref.num_samples
        self.rng = np.random.default_rng(seed)
        dt = 1.0 / cfg.control_hz
        self.window = max(1, int(round(cfg.sampling_window_s / dt)))
        horizon_s = cfg.sampling_horizon_s if horizon_s is None else horizon_s
        self.horizon = max(self.window, int(round(horizon_s / dt)))
        self.k = int(cfg.sampling_candidates)
        self.iterations = int(cfg.sampling_iterations)
        self.elites = max(1, min(int(cfg.sampling_elites), self.k))
        self.sigma0 = float(cfg.sampling_sigma)
        self.decay = float(cfg.sampling_warm_decay)
        self.fall_error = float(cfg.fall_error_m)
        self.pose_scale = float(cfg.sampling_pose_scale_m)
        self.yaw_rate_scale = float(cfg.sampling_yaw_rate_scale)
        names = [n.strip() for n in cfg.sampling_joints.split(",") if n.strip()]
        self.sph = [SPHERICAL_JOINTS.index(n) for n in names if n in SPHERICAL_JOINTS]
        self.rev = [REVOLUTE_JOINTS.index(n) for n in names if n in REVOLUTE_JOINTS]
        self.dim = 3 * len(self.sph) + len(self.rev)
        self.mean = np.zeros(self.dim)
        # Where each Motion slot lives in the per-step nested target list (PyBullet joint order).
        self.slot_of = {slot: i for i, slot in enumerate(sim._slots)}
        self.sph_slots = [self.slot_of[("s", i)] for i in self.sph]
        self.rev_slots = [self.slot_of[("r", i)] for i in self.rev]
        self.links = list(range(ref_positions.shape[1]))
        #: Rollout steps between cost checkpoints (half a window: dense enough to prune early).
        self.check_every = max(1, self.window // 2)
        #: summed weight of one rollout's checkpoints (the last one counts TERMINAL_WEIGHT times)
        self.checkpoint_weight = -(-self.horizon // self.check_every) - 1 + TERMINAL_WEIGHT
        self.offset_scale = float(cfg.sampling_offset_scale_rad)
        self.change_scale = float(cfg.sampling_change_scale_rad)
        #: physics sub-steps per control step inside rollouts (the committed pass keeps the sim's)
        self.rollout_substeps = int(cfg.sampling_rollout_substeps) or sim._substeps
        #: control steps over which a window's offsets ramp from the last committed ones (0 = jump)
        self.ramp = int(round(cfg.sampling_ramp_s / dt))
        #: the offsets committed for the last window (where the next window's ramp starts)
        self.committed_offsets = np.zeros(self.dim)
        #: a window whose warm-started mean costs less than this per checkpoint is committed
        #: without sampling (``sampling_accept_cost``; 0 = always search)
        self.accept_bound = float(cfg.sampling_accept_cost) * self.checkpoint_weight
        self.accepted_windows = 0
        self.windows = 0
        self.last_rollout_fell = False
        self.pruned = 0
        # Committed targets: step index -> nested target list.
        self.committed: dict[int, list] = {}
        self.rollouts = 0
        self.rollout_steps = 0
        self.all_fell_windows = 0
        self.bad_windows = 0
        #: (constraint id, cap N, assist in flight, ground id) of the residual budget, or None
        self._hold: tuple[int, float, bool, int] | None = None
        self._root_pos = ref.root_pos.tolist()
        self._root_rot = ref.root_rot.tolist()

    def hold_root(self, constraint: int, cap: float, in_flight: bool, ground: int) -> None:
        """Move `constraint` (the capped world→root constraint of ``sampling_assist_cap_g``)
        along the reference root in every rollout, as the committed pass does, so that the
        search plans with the same helping hand it will get."""
        self._hold = (constraint, float(cap), bool(in_flight), ground)

    # ------------------------------------------------------------------ targets
    def _targets(self, offsets: np.ndarray, k0: int, steps: int, base: list) -> list:
        """Nested PD-target lists for samples k0+1 .. k0+steps with `offsets` applied.

        With ``sampling_ramp_s`` the offsets move linearly from the last committed ones to
        `offsets` over the ramp's first steps instead of jumping at the window boundary."""
        idx = np.minimum(np.arange(k0 + 1, k0 + steps + 1), self.n - 1)
        ref = self.ref
        out = [list(base[i]) for i in idx]
        per_step = self._per_step(offsets, steps)
        ns = 3 * len(self.sph)
        if self.sph:
            d = quat.from_rotvec(per_step[:, :ns].reshape(steps, -1, 3))  # (steps, S, 4)
            q = quat.multiply(ref.joint_rots[idx][:, self.sph], d)  # local offset: q ∘ δ
            ql = q.tolist()
            for row, qrow in zip(out, ql):
                for slot, qq in zip(self.sph_slots, qrow):
                    row[slot] = qq
        if self.rev:
            a = ref.joint_angles[idx][:, self.rev] + per_step[:, ns:]
            al = a.tolist()
            for row, arow in zip(out, al):
                for slot, aa in zip(self.rev_slots, arow):
                    row[slot] = [aa]
        return out

    def _per_step(self, offsets: np.ndarray, steps: int) -> np.ndarray:
        """(steps, dim) offsets of the next `steps` control steps: `offsets` throughout, or the
        ramp to them from where the last committed window ended."""
        if self.ramp <= 0:
            return np.broadcast_to(offsets, (steps, offsets.size))
        w = np.minimum(1.0, np.arange(1, steps + 1) / self.ramp)[:, None]
        return self.committed_offsets[None] + w * (offsets - self.committed_offsets)[None]

    def target(self, k: int, base: list) -> list:
        """The committed PD target for control sample k (the reference's where none was committed)."""
        t = self.committed.pop(k, None)
        return t if t is not None else base[min(k, self.n - 1)]

    # ------------------------------------------------------------------ scoring
    def _cost(self, s: int) -> float:
        """Tracking cost of the current state against reference sample s (dimensionless)."""
        p, cid, body, ref = self.p, self.cid, self.body, self.ref
        s = min(s, self.n - 1)
        pos, orn = p.getBasePositionAndOrientation(body, physicsClientId=cid)
        vel, ang = p.getBaseVelocity(body, physicsClientId=cid)
        states = p.getLinkStates(body, self.links, physicsClientId=cid)
        x = np.array([st[4] for st in states], dtype=np.float64)
        if not np.isfinite(x).all():
            return math.inf
        err = float(np.linalg.norm(x - self.ref_positions[s], axis=-1).mean())
        rel = 0.0
        if self.pose_scale > 0.0:
            r = self.ref_positions[s]
            rel = float(np.linalg.norm((x - x[0]) - (r - r[0]), axis=-1).mean()) / self.pose_scale
        q = np.asarray(orn)
        dot = abs(float(np.dot(q, ref.root_rot[s])))
        ang_err = 2.0 * math.acos(min(1.0, dot))
        dv = np.asarray(vel) - ref.root_lin_vel[s]
        dw = np.asarray(ang) - ref.root_ang_vel[s]
        sc = COST_SCALES
        cost = (err / sc["body"]) ** 2 + (ang_err / sc["rot"]) ** 2 + float(dv @ dv) / sc["vel"] ** 2 \
            + float(dw @ dw) / sc["ang"] ** 2 + rel * rel
        if self.yaw_rate_scale > 0.0:  # turning about the vertical (y) axis, on its own, tighter
            cost += (float(dw[1]) / self.yaw_rate_scale) ** 2
        if err > self.fall_error or pos[1] < FALL_ROOT_SHARE * ref.root_pos[s][1]:
            cost += FALL_COST
        return cost

    def _offset_cost(self, offsets: np.ndarray) -> float:
        """The offsets' own price, charged at every checkpoint: (RMS offset / scale)² with
        ``sampling_offset_scale_rad`` (0 = free), plus (RMS change from the last committed
        offsets / scale)² with ``sampling_change_scale_rad`` (0 = free). Why: the cost terms
        above only see where the body is, so the warm-started mean wanders from window to
        window and the searched joints end far from the clip's (12–30° on punch); and a new
        random offset every window makes the PD targets jump at each window boundary, a suspected
        source of the root's yaw-rate wobble (measured in docs/PHYSICS.md: not the main one)."""
        if not offsets.size:
            return 0.0
        per_check = 0.0
        if self.offset_scale > 0.0:
            per_check += float(np.mean(offsets * offsets)) / (self.offset_scale * self.offset_scale)
        if self.change_scale > 0.0:
            change = offsets - self.committed_offsets
            per_check += float(np.mean(change * change)) / (self.change_scale * self.change_scale)
        return per_check * self.checkpoint_weight

    def _rollout(self, offsets: np.ndarray, k0: int, base: list, vel_targets: list, bound: float) -> float:
        """Roll `offsets` out from the current state; returns the summed checkpoint cost.

        Checkpoint costs are non-negative, so a rollout whose running sum passes `bound` (the
        cost it would have to beat to matter) is stopped there and returns inf: pruning saves
        most of the steps of the hopeless candidates."""
        p, cid, body, sim = self.p, self.cid, self.body, self.sim
        targets = self._targets(offsets, k0, self.horizon, base)
        every = self.check_every
        set_motors, step, stable_pd = p.setJointMotorControlMultiDofArray, p.stepSimulation, p.STABLE_PD_CONTROL
        joints, kps, kds, forces = sim._joints, sim._kps, sim._kds, sim._forces
        kd_schedule = sim._kd_schedule
        total = self._offset_cost(offsets)
        self.rollouts += 1
        self.last_rollout_fell = False
        hold = self._hold
        for i in range(1, self.horizon + 1):
            s = min(k0 + i, self.n - 1)
            set_motors(body, joints, stable_pd, targetPositions=targets[i - 1], targetVelocities=vel_targets[s],
                       forces=forces, positionGains=kps,
                       velocityGains=kds if kd_schedule is None else kd_schedule[s], physicsClientId=cid)
            if hold is not None:
                constraint, cap, in_flight, ground = hold
                on = in_flight or any_in_contact(p.getContactPoints(bodyA=body, bodyB=ground, physicsClientId=cid))
                p.changeConstraint(constraint, self._root_pos[s], self._root_rot[s], maxForce=cap if on else 0.0,
                                   physicsClientId=cid)
            step(physicsClientId=cid)
            self.rollout_steps += 1
            if i % every == 0 or i == self.horizon:
                c = self._cost(k0 + i)
                if not math.isfinite(c):
                    return math.inf
                remaining = (self.horizon - i) // every
                if c >= FALL_COST:  # fallen: stop here, charge every remaining checkpoint at this cost
                    self.last_rollout_fell = True
                    return total + c * (remaining + TERMINAL_WEIGHT)
                total += c * (TERMINAL_WEIGHT if i == self.horizon else 1.0)
                if total > bound:
                    self.pruned += 1
                    return math.inf
        return total

    # ------------------------------------------------------------------ planning
    def plan(self, k0: int, base: list, vel_targets: list) -> None:
        """Search offsets for samples k0+1 .. k0+window from the current state and commit the best.

        The simulation state is the same after the call as before it."""
        p, cid = self.p, self.cid
        sid = p.saveState(physicsClientId=cid)
        coarse = self.rollout_substeps != self.sim._substeps
        if coarse:  # plan on a cheaper model of the same body; the committed pass runs at full rate
            p.setPhysicsEngineParameter(numSubSteps=self.rollout_substeps, physicsClientId=cid)
        try:
            mean = self.mean.copy()
            sigma = np.full(self.dim, self.sigma0)
            best_x, best_c = np.zeros(self.dim), math.inf
            self.windows += 1
            mean_cost: float | None = None
            if self.accept_bound > 0.0:
                # The mean first, alone: where the last window's offsets still track well enough,
                # searching buys little and costs K × iterations rollouts.
                c = mean_cost = self._rollout(mean, k0, base, vel_targets, math.inf)
                if c < self.accept_bound and not self.last_rollout_fell:
                    best_x, best_c = mean.copy(), c
                    self.accepted_windows += 1
                    log.debug("sampling: window at %d accepted the mean (cost %.2f per checkpoint)",
                              k0, c / self.checkpoint_weight)
            for it in range(self.iterations if best_c == math.inf else 0):
                cands = mean[None] + sigma[None] * self.rng.standard_normal((self.k, self.dim))
                cands[0] = mean
                if it == 0 and self.k > 1:
                    cands[1] = 0.0
                costs = np.full(self.k, math.inf)
                for j in range(self.k):
                    if it == 0 and j == 0 and mean_cost is not None:
                        costs[0] = mean_cost  # already rolled out above, with the same (infinite) bound
                        continue
                    p.restoreState(sid, physicsClientId=cid)
                    done = np.sort(costs[:j])
                    # to matter, a candidate must enter this iteration's elites (or beat the best so far)
                    if self.iterations > 1:
                        bound = done[self.elites - 1] if j >= self.elites else math.inf
                    else:
                        bound = min(best_c, done[0]) if j else best_c
                    costs[j] = self._rollout(cands[j], k0, base, vel_targets, bound)
                order = np.argsort(costs)
                if costs[order[0]] < best_c:
                    best_c, best_x = float(costs[order[0]]), cands[order[0]].copy()
                finite = [j for j in order[: self.elites] if math.isfinite(costs[j])]
                if not finite:
                    break
                elite = cands[finite]
                mean = elite.mean(0)
                sigma = np.maximum(elite.std(0), 0.1 * self.sigma0)
            if not math.isfinite(best_c):
                self.bad_windows += 1  # every rollout blew up: track plainly, the checks will tell
                best_x = np.zeros(self.dim)
            elif best_c >= FALL_COST:
                self.all_fell_windows += 1  # fallback: the least bad one (it may still recover)
            self.mean = best_x * self.decay
        finally:
            if coarse:
                p.setPhysicsEngineParameter(numSubSteps=self.sim._substeps, physicsClientId=cid)
            p.restoreState(sid, physicsClientId=cid)
            p.removeState(sid, physicsClientId=cid)
        committed = self._targets(best_x, k0, self.window, base)
        self.committed_offsets = self._per_step(best_x, self.window)[-1].copy()
        for i, t in enumerate(committed, start=1):
            self.committed[k0 + i] = t

    def summary(self) -> dict[str, float]:
        """Per-clip sampler diagnostics (counts, for the bench and the logs)."""
        return {
            "sampling_rollouts": float(self.rollouts),
            "sampling_rollout_steps": float(self.rollout_steps),
            "sampling_all_fell_windows": float(self.all_fell_windows),
            "sampling_bad_windows": float(self.bad_windows),
            "sampling_pruned": float(self.pruned),
            "sampling_accepted_share": self.accepted_windows / self.windows if self.windows else 0.0,
            "sampling_horizon_s": self.horizon / self.sim.config.control_hz,
        }
