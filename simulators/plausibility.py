"""Physical plausibility of any clip, from forward kinematics only (no simulation).

Definitions follow PhysDiff (Yuan et al. 2023) / UHC, adapted to this humanoid's collision
primitives instead of SMPL mesh vertices:

* ``penetrate_mm`` — per frame, how far the lowest collision point of the body is below the
  ground (0 if above); mean over frames.
* ``float_mm`` — per frame, how far the lowest point is above the ground beyond a 5 mm
  tolerance (0 otherwise); mean over frames. A jump is counted as floating too, exactly as in
  PhysDiff; compare clips of the same action.
* ``skate_mm`` — for each foot (ankle body and its box) that is in ground contact (lowest
  point below ``contact_mm``) on two consecutive frames, its horizontal displacement between
  them; mean over frame pairs of the sum over feet. Per frame at the clip's rate.
* ``skate_sliding_mm`` and ``skate_hovering_mm`` — ``skate_mm`` split by how close the foot
  is: *sliding* counts the pairs where the foot's lowest point is within ``float_tolerance_m``
  (5 mm) of the floor, or below it, on both frames, i.e. a foot really dragged over the floor;
  *hovering* the rest, a foot 5–20 mm above the floor that the metric's 2 cm contact band still
  counts (a low swing foot moves fast without touching). The two sum to ``skate_mm``. Why:
  a simulated foot rests on the floor where mocap feet float a few cm above it, so correction
  moves frames into the band. Only the sliding part is a physical defect; on the bundled clips
  the default corrector's added skating is mostly hovering on walk and sliding on run, kick,
  punch and spin (``docs/PHYSICS.md``).
* ``phys_err_mm`` — penetrate + float + skate.
* ``jitter`` — mean magnitude of body-position acceleration over all bodies and frames
  (second finite difference), in m/s².

Flight (:func:`flight_metrics`), the output-only check of contact consistency: in flight
nothing but gravity acts, so the centre of mass must fall ballistically.

* ``airborne_share`` — share of frames that are truly in flight: the lowest collision point is
  above ``contact_mm`` (no body is near the floor) **and** the ground would have to carry less
  than half the body weight, i.e. the vertical support (a_COM,y + g)/g, with a_COM,y the second
  difference of the centre of mass over a ±2-frame window, is below
  :data:`AIRBORNE_SUPPORT_G`. Clearance alone over-counts mocap, whose feet float a few cm
  above the floor while they push (bundled jump: 41 % "clear" but 24 % in free fall; run 88 %
  vs 40 %); the support condition is the "check anyone can run on a clip" of
  ``shared/PHYSICS.md`` turned into a classifier, with the threshold halfway between free fall
  (0 g) and standing (1 g).
* ``flight_unexplained_g`` — over frames *clear of the floor* whose neighbours are clear too,
  mean |a_COM − g| / g (single-frame second difference): 0 for a ballistic flight, 1 for a
  body hovering in the air. It keeps the clearance-only definition on purpose: judged on the
  airborne frames above it would pass a hovering body by construction. NaN when the clip has
  no such frame. On a simulated output clearance is the truth (contacts are real); on raw mocap
  floating feet make it large.

Link masses and COM offsets come from the URDF (:func:`motion.kinematics.centers_of_mass`).
"""

from __future__ import annotations

import numpy as np

from sccl.motion.clip import Motion
from sccl.motion.kinematics import body_lowest_points, centers_of_mass, forward_kinematics
from sccl.motion.skeleton import FOOT_BODIES, load_skeleton

FLOAT_TOLERANCE_M = 0.005
CONTACT_HEIGHT_M = 0.02
#: A frame is airborne only if the ground would have to carry less than this share of the
#: body weight (halfway between free fall and standing; see the module docstring).
AIRBORNE_SUPPORT_G = 0.5

METRIC_KEYS = ("penetrate_mm", "float_mm", "skate_mm", "phys_err_mm", "jitter")
#: ``skate_mm``'s two parts (see the module docstring); :func:`physics_metrics` returns them too.
SKATE_PART_KEYS = ("skate_sliding_mm", "skate_hovering_mm")


def physics_metrics(motion: Motion, *, float_tolerance_m: float = FLOAT_TOLERANCE_M,
                    contact_height_m: float = CONTACT_HEIGHT_M) -> dict[str, float]:
    """Plausibility metrics of one clip (see module docstring): :data:`METRIC_KEYS` and
    :data:`SKATE_PART_KEYS`, in mm except jitter (m/s²)."""
    kin = forward_kinematics(motion)
    low = body_lowest_points(kin)  # (T, B)
    lowest = low.min(axis=-1)
    penetrate = np.maximum(0.0, -lowest).mean()
    floating = np.maximum(0.0, lowest - float_tolerance_m).mean()
    sk = load_skeleton()
    feet = [sk.index(n) for n in FOOT_BODIES]
    if motion.num_frames >= 2:
        contact = low[:, feet] < contact_height_m  # (T, 2)
        both = contact[1:] & contact[:-1]
        on_floor = low[:, feet] <= float_tolerance_m
        sliding = both & on_floor[1:] & on_floor[:-1]
        horiz = kin.positions[:, feet][:, :, [0, 2]]
        disp = np.linalg.norm(np.diff(horiz, axis=0), axis=-1)  # (T-1, 2)
        skate = float((disp * both).sum(axis=1).mean())
        skate_sliding = float((disp * sliding).sum(axis=1).mean())
    else:
        skate = skate_sliding = 0.0
    if motion.num_frames >= 3:
        acc = np.diff(kin.positions, n=2, axis=0) * motion.fps ** 2
        jitter = float(np.linalg.norm(acc, axis=-1).mean())
    else:
        jitter = 0.0
    pen_mm, float_mm, skate_mm = float(penetrate) * 1000.0, float(floating) * 1000.0, skate * 1000.0
    return {
        "penetrate_mm": pen_mm,
        "float_mm": float_mm,
        "skate_mm": skate_mm,
        "phys_err_mm": pen_mm + float_mm + skate_mm,
        "jitter": jitter,
        "skate_sliding_mm": skate_sliding * 1000.0,
        # the difference, so the parts sum to skate_mm exactly
        "skate_hovering_mm": skate_mm - skate_sliding * 1000.0,
    }


def mean_metrics(motions: list[Motion]) -> dict[str, float]:
    """Mean of :func:`physics_metrics` over clips (NaN for an empty list)."""
    if not motions:
        return {k: float("nan") for k in METRIC_KEYS}
    rows = [physics_metrics(m) for m in motions]
    return {k: float(np.mean([r[k] for r in rows])) for k in METRIC_KEYS}


FLIGHT_KEYS = ("airborne_share", "flight_unexplained_g")


def vertical_support_g(com_y: np.ndarray, fps: float, gravity: float = 9.8) -> np.ndarray:
    """Per frame, the vertical force the ground must supply, in body weights: (a_y + g) / g with
    a_y the centred second difference of the COM height over ±2 frames (±1 for clips of 3–4
    frames; light smoothing, as mocap at 16–60 fps is noisy frame to frame). The first and last
    frames take their nearest estimate. NaN everywhere for clips shorter than 3 frames."""
    y = np.asarray(com_y, dtype=np.float64)
    t = y.shape[0]
    if t < 3:
        return np.full(t, np.nan)
    h = 2 if t >= 5 else 1
    acc = (y[2 * h:] - 2.0 * y[h:-h] + y[:-2 * h]) * (fps / h) ** 2  # frames h .. t-h-1
    acc = np.pad(acc, (h, h), mode="edge")
    return (acc + gravity) / gravity


def flight_metrics(motion: Motion, *, contact_height_m: float = CONTACT_HEIGHT_M,
                   gravity: float = 9.8, support_g: float = AIRBORNE_SUPPORT_G) -> dict[str, float]:
    """Airborne share and unexplained centre-of-mass acceleration in flight (module docstring)."""
    kin = forward_kinematics(motion)
    clear = body_lowest_points(kin).min(axis=-1) > contact_height_m  # (T,)
    sk = load_skeleton()
    com = np.einsum("tbi,b->ti", centers_of_mass(kin), sk.masses) / sk.masses.sum()
    support = vertical_support_g(com[:, 1], motion.fps, gravity)
    # clips too short to differentiate are judged by clearance alone
    airborne = clear & ((support < support_g) | np.isnan(support))
    out = {"airborne_share": float(airborne.mean()) if airborne.size else float("nan"),
           "flight_unexplained_g": float("nan")}
    if motion.num_frames < 3:
        return out
    acc = np.diff(com, n=2, axis=0) * motion.fps ** 2  # at frames 1..T-2
    inner = clear[1:-1] & clear[:-2] & clear[2:]
    if inner.any():
        unexplained = np.linalg.norm(acc[inner] - np.array([0.0, -gravity, 0.0]), axis=-1) / gravity
        out["flight_unexplained_g"] = float(unexplained.mean())
    return out
