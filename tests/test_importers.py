"""Importers and exporters: known-answer retargeting through the real smplx code path (with a
small SMPL-H body model written here), BVH files written here, HumanML3D features encoded here
the way HumanML3D's motion_process.py does, BVH export round trips and the CLI."""

from __future__ import annotations

import csv
import json
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sccl.motion import quaternion as quat
from sccl.motion.clip import Motion
from sccl.motion.deepmimic import read_clip, read_directory
from sccl.motion.errors import UserError
from sccl.motion.importers import import_directory
from sccl.motion.importers.bvh import bvh_to_motion_exact, import_bvh, parse_bvh, write_bvh
from sccl.motion.importers.retarget import humanoid_leg_length
from sccl.motion.kinematics import forward_kinematics
from sccl.motion.skeleton import REVOLUTE_JOINTS, SPHERICAL_JOINTS, load_skeleton

DEG = np.pi / 180.0
SK = load_skeleton()
B = {n: i for i, n in enumerate(SK.body_names)}


def rot(axis: str, deg: float) -> np.ndarray:
    return Rotation.from_euler(axis, deg, degrees=True).as_matrix()


def assert_rest(m, frames=slice(None), atol=1e-6):
    """Every joint of the humanoid at identity, facing +x."""
    assert np.allclose(np.abs(m.joint_rots[frames, :, 3]), 1.0, atol=atol), m.joint_rots[frames]
    assert np.allclose(m.joint_angles[frames], 0.0, atol=atol)
    assert np.allclose(np.abs(m.root_rot[frames, 3]), 1.0, atol=atol)


def joint_quat(m, name):
    return quat.canonical(m.joint_rots[:, SPHERICAL_JOINTS.index(name)])


def angle(m, name):
    return m.joint_angles[:, REVOLUTE_JOINTS.index(name)]


# ============================================================================== SMPL layout
# A T-pose skeleton in SMPL's canonical frame (y-up, facing +z, left = +x), metres.
SMPL_REST = np.array([
    [0, 0.95, 0], [0.08, 0.87, 0], [-0.08, 0.87, 0], [0, 1.05, 0], [0.08, 0.47, 0], [-0.08, 0.47, 0],
    [0, 1.15, 0], [0.08, 0.07, 0], [-0.08, 0.07, 0], [0, 1.25, 0], [0.08, 0.02, 0.12], [-0.08, 0.02, 0.12],
    [0, 1.45, 0], [0.07, 1.40, 0], [-0.07, 1.40, 0], [0, 1.55, 0], [0.18, 1.42, 0], [-0.18, 1.42, 0],
    [0.45, 1.42, 0], [-0.45, 1.42, 0], [0.70, 1.42, 0], [-0.70, 1.42, 0],
], dtype=np.float64)
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
SOURCE_LEG = 0.8  # hip -> knee -> ankle of SMPL_REST


def smplh_parents() -> list[int]:
    left = [20, 22, 23, 20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35]
    right = [21, 37, 38, 21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50]
    return SMPL_PARENTS + left + right


def write_smplh_model(path: Path) -> Path:
    """A small SMPL-H .npz body model with smplx's keys and shapes (V vertices instead of
    6890). J_regressor picks vertex j for joint j, so the rest joints are SMPL_REST exactly;
    shape coefficient 0 scales the whole body (shapedirs = v_template)."""
    nj = 52
    hands = SMPL_REST[[20] * 15 + [21] * 15] + np.array([0.03, 0, 0]) * np.sign(SMPL_REST[[20] * 15 + [21] * 15, :1])
    joints = np.concatenate([SMPL_REST, hands])
    extra = joints[:8] + 0.01
    v = np.concatenate([joints, extra])
    nv = v.shape[0]
    reg = np.zeros((nj, nv))
    reg[np.arange(nj), np.arange(nj)] = 1.0
    shapedirs = np.zeros((nv, 3, 16))
    shapedirs[:, :, 0] = v
    weights = np.zeros((nv, nj))
    weights[np.arange(nj), np.arange(nj)] = 1.0
    weights[nj:, 0] = 1.0
    kintree = np.array([[4294967295] + smplh_parents()[1:], list(range(nj))], dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path, v_template=v, shapedirs=shapedirs, posedirs=np.zeros((nv, 3, (nj - 1) * 9)), J_regressor=reg,
        weights=weights, kintree_table=kintree, f=np.array([[0, 1, 2], [3, 4, 5]], dtype=np.int64),
        hands_componentsl=np.eye(45), hands_componentsr=np.eye(45), hands_meanl=np.zeros(45), hands_meanr=np.zeros(45),
    )
    return path


def aa(m: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(m).as_rotvec()


def write_amass(path: Path, poses_body: dict[int, np.ndarray], global_orient: np.ndarray, frames: int = 3,
                trans=(0.0, -0.95, 0.95), betas=None, fps_key="mocap_framerate") -> Path:
    """An AMASS SMPL-H file: (T, 156) poses. ``trans`` puts the pelvis (rest at y=0.95 in the
    model frame) 0.95 m above the z-up floor when global_orient stands the body up."""
    poses = np.zeros((frames, 156))
    poses[:, :3] = aa(global_orient)
    for j, r in poses_body.items():
        poses[:, 3 * j:3 * j + 3] = aa(r)
    b = np.zeros(16) if betas is None else np.asarray(betas, dtype=np.float64)
    np.savez(path, poses=poses, trans=np.tile(trans, (frames, 1)), betas=b, gender=np.array("male"),
             **{fps_key: np.array(60.0)})
    return path


STAND = rot("x", 90)  # SMPL canonical (y-up) -> AMASS z-up world
ARMS_DOWN = {16: rot("z", -90), 17: rot("z", 90)}  # SMPL left arm (+x) / right arm (-x) -> down


@pytest.fixture(scope="module")
def body_models(tmp_path_factory) -> Path:
    pytest.importorskip("smplx")
    root = tmp_path_factory.mktemp("body_models")
    write_smplh_model(root / "smplh" / "SMPLH_MALE.npz")
    return root


def amass(tmp_path, body_models, name="clip_poses.npz", ground=False, **kw):
    from sccl.motion.importers.amass import import_amass

    return import_amass(write_amass(tmp_path / name, **kw), body_models, ground=ground)


class TestAmass:
    def test_pose_matching_humanoid_rest_gives_identity(self, tmp_path, body_models):
        m = amass(tmp_path, body_models, poses_body=ARMS_DOWN, global_orient=STAND)
        assert_rest(m)
        # root at the source hip height, scaled by leg length; the humanoid's hips are at its root height
        scale = humanoid_leg_length() / SOURCE_LEG
        assert np.allclose(m.root_pos, [[0.0, 0.87 * scale, 0.0]] * 3, atol=1e-6)
        assert m.fps == 60.0 and m.label is None

    def test_smpl_t_pose_is_an_explicit_shoulder_offset(self, tmp_path, body_models):
        m = amass(tmp_path, body_models, poses_body={}, global_orient=STAND)
        # humanoid right arm (hanging along -y) turned onto its right side (+z): -90 deg about x
        assert np.allclose(joint_quat(m, "right_shoulder")[0], quat.from_axis_angle([1, 0, 0], -np.pi / 2), atol=1e-6)
        assert np.allclose(joint_quat(m, "left_shoulder")[0], quat.from_axis_angle([1, 0, 0], np.pi / 2), atol=1e-6)
        pos = forward_kinematics(m).positions[0]
        arm = pos[B["right_wrist"]] - pos[B["right_shoulder"]]
        assert np.allclose(arm / np.linalg.norm(arm), [0, 0, 1], atol=1e-6)
        for other in ("chest", "neck", "right_hip", "left_hip", "right_ankle", "left_ankle"):
            assert np.allclose(abs(joint_quat(m, other)[0, 3]), 1.0, atol=1e-6), other

    def test_knee_flexion_60_degrees(self, tmp_path, body_models):
        body = dict(ARMS_DOWN)
        body[4] = rot("x", 60)  # SMPL left knee, flexion about its lateral axis (+x)
        body[5] = rot("x", 60)
        m = amass(tmp_path, body_models, poses_body=body, global_orient=STAND)
        assert np.allclose(angle(m, "left_knee"), -60 * DEG, atol=1e-6)
        assert np.allclose(angle(m, "right_knee"), -60 * DEG, atol=1e-6)
        pos = forward_kinematics(m).positions[0]
        assert pos[B["left_ankle"], 0] < pos[B["left_knee"], 0] - 0.3  # the shin goes backward (-x)
        # the source foot follows its shin (ankle at rest): so does the humanoid's
        assert np.allclose(joint_quat(m, "left_ankle")[0], [0, 0, 0, 1], atol=1e-6)

    def test_pelvis_yaw_90_gives_root_heading_90(self, tmp_path, body_models):
        m = amass(tmp_path, body_models, poses_body=ARMS_DOWN, global_orient=rot("z", 90) @ STAND)
        assert np.allclose(quat.heading_angle(m.root_rot), np.pi / 2, atol=1e-6)
        assert np.allclose(m.joint_rots[:, :, 3] ** 2, 1.0, atol=1e-6)  # the body itself unchanged

    def test_walk_direction_and_shape_invariance(self, tmp_path, body_models):
        # forward for SMPL standing in AMASS (z-up) is -y; the humanoid walks along +x
        frames = 5
        trans = np.stack([np.zeros(frames), -0.95 - 0.1 * np.arange(frames), np.full(frames, 0.95)], 1)
        path = write_amass(tmp_path / "walk.npz", ARMS_DOWN, STAND, frames=frames, trans=(0, 0, 0))
        data = dict(np.load(path))
        data["trans"] = trans
        np.savez(path, **data)
        from sccl.motion.importers.amass import import_amass

        m = import_amass(path, body_models, ground=False)
        step = np.diff(m.root_pos, axis=0)
        assert np.allclose(step, [[0.1 * humanoid_leg_length() / SOURCE_LEG, 0, 0]] * 4, atol=1e-6)
        # a 1.5x bigger body (beta 0 scales the template) retargets to the same humanoid pose
        big = amass(tmp_path, body_models, "big.npz", poses_body={4: rot("x", 60)}, global_orient=STAND,
                    trans=(0.0, -1.425, 1.425), betas=[0.5] + [0.0] * 15)
        small = amass(tmp_path, body_models, "small.npz", poses_body={4: rot("x", 60)}, global_orient=STAND)
        assert big.allclose(small, atol=1e-6)

    def test_smplx_style_file_and_grounding(self, tmp_path, body_models):
        (body_models / "smplx").mkdir(exist_ok=True)
        from sccl.motion.importers.amass import read_amass

        p = write_amass(tmp_path / "x.npz", ARMS_DOWN, STAND, fps_key="mocap_frame_rate")
        assert read_amass(p)["model_type"] == "smplx" and read_amass(p)["fps"] == 60.0
        m = amass(tmp_path, body_models, "g.npz", poses_body=ARMS_DOWN, global_orient=STAND, ground=True)
        from sccl.motion.importers.retarget import ground_offset

        assert abs(ground_offset(m)) < 1e-9

    def test_missing_body_models_name_the_expected_path(self, tmp_path, body_models):
        from sccl.motion.importers.amass import import_amass

        p = write_amass(tmp_path / "a.npz", ARMS_DOWN, STAND)
        with pytest.raises(UserError, match=r"smplh/SMPLH_MALE\.npz"):
            import_amass(p, tmp_path / "empty_dir_that_is_missing")  # not a directory
        (tmp_path / "models").mkdir()
        with pytest.raises(UserError, match=r"models/smplh/SMPLH_MALE\.npz"):
            import_amass(p, tmp_path / "models")
        with pytest.raises(UserError, match="--body-models"):
            import_amass(p, None)

    def test_missing_smplx_explains_how_to_install(self, tmp_path, monkeypatch):
        from sccl.motion.importers.amass import import_amass

        monkeypatch.setitem(sys.modules, "smplx", None)
        with pytest.raises(UserError, match=r"pip install 'sccl\[smpl\]'"):
            import_amass(tmp_path / "whatever.npz", tmp_path)

    def test_not_an_amass_file(self, tmp_path, body_models):
        from sccl.motion.importers.amass import import_amass

        p = tmp_path / "bad.npz"
        np.savez(p, foo=np.zeros(3))
        with pytest.raises(UserError, match=r"bad\.npz: not an AMASS motion file: missing poses, trans"):
            import_amass(p, body_models)

    def test_body_model_with_a_pickled_array_is_refused(self, tmp_path, body_models):
        """smplx opens .npz models with allow_pickle=True: a crafted file with an object array
        never reaches it."""
        d = dict(np.load(body_models / "smplh" / "SMPLH_MALE.npz"))
        d["evil"] = np.array([{"payload": 1}], dtype=object)
        (tmp_path / "bm" / "smplh").mkdir(parents=True)
        np.savez(tmp_path / "bm" / "smplh" / "SMPLH_MALE.npz", **d)
        p = tmp_path / "walk.npz"
        np.savez(p, poses=np.zeros((2, 156)), trans=np.zeros((2, 3)), mocap_framerate=30.0, gender="male")
        from sccl.motion.importers.amass import import_amass

        with pytest.raises(UserError, match=r"SMPLH_MALE\.npz: body model holds a pickled \(object\) array, refused"):
            import_amass(p, tmp_path / "bm", ground=False)

    def test_smpl_pkl_model(self, tmp_path, body_models):
        """SMPL (24 joints, pickle) goes through smplx.SMPL."""
        d = dict(np.load(body_models / "smplh" / "SMPLH_MALE.npz"))
        nv = d["v_template"].shape[0]
        parents = SMPL_PARENTS + [20, 21]
        smpl = dict(v_template=d["v_template"], shapedirs=d["shapedirs"][:, :, :10], J_regressor=d["J_regressor"][:24],
                    posedirs=np.zeros((nv, 3, 207)), weights=d["weights"][:, :24],
                    kintree_table=np.array([[4294967295] + parents[1:], list(range(24))]), f=d["f"])
        (tmp_path / "bm" / "smpl").mkdir(parents=True)
        with open(tmp_path / "bm" / "smpl" / "SMPL_NEUTRAL.pkl", "wb") as fh:
            pickle.dump(smpl, fh)
        poses = np.zeros((2, 72))
        poses[:, :3] = aa(STAND)
        poses[:, 3 * 4:3 * 5] = aa(rot("x", 60))
        for j, r in ARMS_DOWN.items():
            poses[:, 3 * j:3 * j + 3] = aa(r)
        p = tmp_path / "smpl.npz"
        np.savez(p, poses=poses, trans=np.tile([0.0, -0.95, 0.95], (2, 1)), mocap_framerate=30.0, gender="neutral")
        from sccl.motion.importers.amass import import_amass

        with pytest.raises(UserError, match=r"SMPL_NEUTRAL\.pkl: a \.pkl body model is a Python pickle"):
            import_amass(p, tmp_path / "bm", ground=False)  # pickles load only when trusted explicitly
        m = import_amass(p, tmp_path / "bm", ground=False, trust_pickle=True)
        assert np.allclose(angle(m, "left_knee"), -60 * DEG, atol=1e-6)
        assert np.allclose(angle(m, "right_knee"), 0.0, atol=1e-6)


# =============================================================================== BVH files
CMU_SKELETON = [  # name, parent, offset (cm): a CMU-style T-pose facing +z, left = +x
    ("Hips", None, (0, 0, 0)),
    ("LHipJoint", "Hips", (0, 0, 0)), ("LeftUpLeg", "LHipJoint", (8, -8, 0)), ("LeftLeg", "LeftUpLeg", (0, -40, 0)),
    ("LeftFoot", "LeftLeg", (0, -40, 0)), ("LeftToeBase", "LeftFoot", (0, -5, 12)),
    ("RHipJoint", "Hips", (0, 0, 0)), ("RightUpLeg", "RHipJoint", (-8, -8, 0)), ("RightLeg", "RightUpLeg", (0, -40, 0)),
    ("RightFoot", "RightLeg", (0, -40, 0)), ("RightToeBase", "RightFoot", (0, -5, 12)),
    ("LowerBack", "Hips", (0, 5, 0)), ("Spine", "LowerBack", (0, 10, 0)), ("Spine1", "Spine", (0, 10, 0)),
    ("Neck", "Spine1", (0, 10, 0)), ("Neck1", "Neck", (0, 5, 0)), ("Head", "Neck1", (0, 5, 0)),
    ("LeftShoulder", "Spine1", (3, 8, 0)), ("LeftArm", "LeftShoulder", (12, 0, 0)),
    ("LeftForeArm", "LeftArm", (28, 0, 0)), ("LeftHand", "LeftForeArm", (25, 0, 0)),
    ("RightShoulder", "Spine1", (-3, 8, 0)), ("RightArm", "RightShoulder", (-12, 0, 0)),
    ("RightForeArm", "RightArm", (-28, 0, 0)), ("RightHand", "RightForeArm", (-25, 0, 0)),
]
CMU_LEG = 80.0  # cm


def write_cmu_bvh(path: Path, frames: list[dict], order: str = "ZYX", root_pos=None, fps: float = 120.0,
                  skeleton=CMU_SKELETON) -> Path:
    """A BVH file: ``frames`` = per frame {joint: local rotation matrix}; channels in ``order``."""
    children: dict[str | None, list] = {}
    for name, parent, off in skeleton:
        children.setdefault(parent, []).append((name, off))
    lines = ["HIERARCHY"]
    chans = " ".join(f"{a}rotation" for a in order)
    walk: list[str] = []

    def emit(name, off, depth, root=False):
        pad = "\t" * depth
        walk.append(name)
        lines.append(pad + ("ROOT " if root else "JOINT ") + name)
        lines.append(pad + "{")
        lines.append(pad + "\tOFFSET " + " ".join(f"{v:.4f}" for v in off))
        lines.append(pad + ("\tCHANNELS 6 Xposition Yposition Zposition " if root else "\tCHANNELS 3 ") + chans)
        kids = children.get(name, [])
        for c, o in kids:
            emit(c, o, depth + 1)
        if not kids:
            lines.extend([pad + "\tEnd Site", pad + "\t{", pad + "\t\tOFFSET 0 -3 0", pad + "\t}"])
        lines.append(pad + "}")

    emit(skeleton[0][0], skeleton[0][2], 0, root=True)
    lines.extend(["MOTION", f"Frames: {len(frames)}", f"Frame Time: {1.0 / fps:.8f}"])
    for i, f in enumerate(frames):
        rp = (0.0, 88.0, 0.0) if root_pos is None else root_pos[i]
        vals = list(rp)
        for name in walk:
            r = f.get(name, np.eye(3))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # gimbal lock: still the exact rotation
                vals += list(Rotation.from_matrix(r).as_euler(order.upper(), degrees=True))
        lines.append(" ".join(f"{v:.6f}" for v in vals))
    path.write_text("\n".join(lines) + "\n")
    return path


BVH_ARMS_DOWN = {"LeftArm": rot("z", -90), "RightArm": rot("z", 90)}


class TestBvh:
    @pytest.mark.parametrize("order,method", [("ZYX", "positions"), ("XYZ", "positions"), ("ZXY", "rotations"),
                                              ("YZX", "rotations"), ("ZYX", "rotations")])
    def test_rest_knee_yaw_elbow_known_answers(self, tmp_path, order, method):
        flex = dict(BVH_ARMS_DOWN, LeftLeg=rot("x", 60), RightLeg=rot("x", 60))
        elbow = dict(BVH_ARMS_DOWN, LeftForeArm=rot("y", -90), RightForeArm=rot("y", 90))
        yaw = dict(BVH_ARMS_DOWN, Hips=rot("y", 90))
        p = write_cmu_bvh(tmp_path / "walk.bvh", [BVH_ARMS_DOWN, flex, elbow, yaw, {}], order=order)
        m = import_bvh(p, ground=False, method=method)
        assert m.fps == pytest.approx(120.0) and m.num_frames == 5
        assert_rest(m, 0)
        assert np.allclose(m.root_pos[0], [0, 0.80 * humanoid_leg_length() / 0.80, 0], atol=1e-6)
        assert np.allclose(angle(m, "left_knee")[1], -60 * DEG, atol=1e-6)
        assert np.allclose(angle(m, "right_knee")[1], -60 * DEG, atol=1e-6)
        assert np.allclose(angle(m, "left_elbow")[2], 90 * DEG, atol=1e-6)
        assert np.allclose(angle(m, "right_elbow")[2], 90 * DEG, atol=1e-6)
        pos = forward_kinematics(m).positions[2]
        assert pos[B["left_wrist"], 0] > pos[B["left_elbow"], 0] + 0.2  # forearm forward (+x)
        assert quat.heading_angle(m.root_rot[3]) == pytest.approx(np.pi / 2, abs=1e-6)
        assert_rest(m.replace(root_rot=np.tile([0, 0, 0, 1.0], (5, 1))), 3)
        # frame 4: the T-pose; the clavicle (LeftShoulder) is composed into the humanoid shoulder
        assert np.allclose(joint_quat(m, "left_shoulder")[4], quat.from_axis_angle([1, 0, 0], np.pi / 2), atol=1e-6)

    def test_clavicle_is_composed(self, tmp_path):
        # raise the arm at the clavicle instead of the shoulder joint: same humanoid shoulder
        a = write_cmu_bvh(tmp_path / "a.bvh", [{"LeftShoulder": rot("z", -90)}])
        b = write_cmu_bvh(tmp_path / "b.bvh", [{"LeftArm": rot("z", -90)}])
        qa = joint_quat(import_bvh(a, ground=False), "left_shoulder")
        qb = joint_quat(import_bvh(b, ground=False), "left_shoulder")
        assert np.allclose(qa, qb, atol=1e-6) and np.allclose(qa, [[0, 0, 0, 1]], atol=1e-6)

    def test_round_trip_within_1cm(self, tmp_path):
        rng = np.random.default_rng(0)
        frames = []
        t = 40
        for i in range(t):
            ph = 2 * np.pi * i / t
            f = dict(BVH_ARMS_DOWN)
            f["Hips"] = rot("y", 30 * np.sin(ph)) @ rot("x", 5 * np.cos(ph))
            f["LeftUpLeg"] = rot("x", -35 * np.sin(ph)) @ rot("z", 5)
            f["RightUpLeg"] = rot("x", 35 * np.sin(ph))
            f["LeftLeg"] = rot("x", 40 + 30 * np.sin(ph) + rng.normal(0, 2))
            f["RightLeg"] = rot("x", 40 - 30 * np.sin(ph))
            f["LeftFoot"] = rot("x", -10 * np.sin(ph))
            f["Spine"] = rot("y", 10 * np.sin(ph))
            f["Head"] = rot("x", 10)
            f["LeftArm"] = rot("z", -70) @ rot("x", 30 * np.sin(ph))
            f["LeftForeArm"] = rot("y", -40 - 20 * np.cos(ph))
            f["RightForeArm"] = rot("y", 30)
            frames.append(f)
        root = [(3.0 * i, 88 + 2 * np.sin(2 * np.pi * i / t), 1.0 * i) for i in range(t)]
        src = write_cmu_bvh(tmp_path / "src.bvh", frames, order="ZXY", root_pos=root, fps=60)
        first = import_bvh(src)
        out = write_bvh(first, tmp_path / "out" / "src.bvh")
        again = import_bvh(out)
        err = np.linalg.norm(forward_kinematics(first).positions - forward_kinematics(again).positions, axis=-1)
        assert err.max() < 0.01  # the acceptance bar; in fact ~1e-6 m
        assert err.max() < 1e-4
        exact = bvh_to_motion_exact(out)
        assert np.abs(forward_kinematics(exact).positions - forward_kinematics(first).positions).max() < 1e-4
        assert again.fps == pytest.approx(60.0)

    def test_joint_map_for_other_skeletons(self, tmp_path):
        rename = {"Hips": "pelvis", "LeftUpLeg": "j_lthigh", "LeftLeg": "j_lshin", "LeftFoot": "j_lfoot",
                  "RightUpLeg": "j_rthigh", "RightLeg": "j_rshin", "RightFoot": "j_rfoot", "Spine1": "chest",
                  "Head": "skull", "LeftArm": "j_luparm", "LeftForeArm": "j_lloarm", "LeftHand": "j_lhand",
                  "RightArm": "j_ruparm", "RightForeArm": "j_rloarm", "RightHand": "j_rhand"}
        skel = [(rename.get(n, n), rename.get(p, p) if p else None, o) for n, p, o in CMU_SKELETON]
        frames = [{rename.get(k, k): v for k, v in dict(BVH_ARMS_DOWN, LeftLeg=rot("x", 60)).items()}]
        p = write_cmu_bvh(tmp_path / "other.bvh", frames, skeleton=skel)
        with pytest.raises(UserError, match=r"other\.bvh: cannot map this skeleton onto the humanoid: missing "
                                             r"right_hip \(.*\), right_knee \(.*left_ankle \(.*--joint-map"):
            import_bvh(p)
        with pytest.raises(UserError, match=r"other\.bvh: cannot find a joint for the humanoid right_hip.*--joint-map"):
            import_bvh(p, method="rotations")
        jm = {"root": "pelvis", "chest": "chest", "neck": "skull"}
        for side, s in (("left", "l"), ("right", "r")):
            jm[f"{side}_hip"] = {"joint": f"j_{s}thigh", "end": f"j_{s}shin", "mode": "bone"}
            jm[f"{side}_knee"] = {"joint": f"j_{s}shin", "end": f"j_{s}foot", "mode": "bone"}
            jm[f"{side}_ankle"] = f"j_{s}foot"
            jm[f"{side}_shoulder"] = {"joint": f"j_{s}uparm", "end": f"j_{s}loarm", "mode": "bone"}
            jm[f"{side}_elbow"] = {"joint": f"j_{s}loarm", "end": f"j_{s}hand", "mode": "bone"}
        (tmp_path / "map.json").write_text(json.dumps(jm))
        for method in ("positions", "rotations"):
            m = import_bvh(p, joint_map=tmp_path / "map.json", ground=False, method=method)
            assert np.allclose(angle(m, "left_knee"), -60 * DEG, atol=1e-6)
            assert_rest(m.replace(joint_angles=np.zeros((1, 4)), joint_rots=np.tile([0, 0, 0, 1.0], (1, 8, 1))))

    def test_units_and_up_axis(self, tmp_path):
        # the same clip in metres and z-up gives the same humanoid motion
        p_cm = write_cmu_bvh(tmp_path / "cm.bvh", [dict(BVH_ARMS_DOWN, LeftLeg=rot("x", 45))])
        c = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # y-up -> z-up
        skel_m = [(n, p, tuple(c @ (np.array(o) / 100.0))) for n, p, o in CMU_SKELETON]
        frame = {k: c @ v @ c.T for k, v in dict(BVH_ARMS_DOWN, LeftLeg=rot("x", 45)).items()}
        p_m = write_cmu_bvh(tmp_path / "m.bvh", [frame], skeleton=skel_m, root_pos=[tuple(c @ [0, 0.88, 0])])
        a = import_bvh(p_cm)
        b = import_bvh(p_m, up="z")
        assert a.allclose(b, atol=1e-5)

    @pytest.mark.parametrize("text,match", [
        ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0\n}\n", r"bad\.bvh:4: OFFSET needs 3 numbers"),
        ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 1 Wrotation\n}\n", r"bad\.bvh:5: unknown channel"),
        ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 1 Xrotation\n}\nMOTION\nFrames: 2\nFrame Time: 0.1\n1\n1 2\n",
         r"bad\.bvh:11: frame 1 has 2 values, expected 1"),
        ("MOTION\n", r"bad\.bvh:1: expected HIERARCHY"),
        ("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n", r"bad\.bvh:4: unexpected end of file"),
    ])
    def test_bad_files_name_file_and_line(self, tmp_path, text, match):
        p = tmp_path / "bad.bvh"
        p.write_text(text)
        with pytest.raises(UserError, match=match):
            import_bvh(p)

    def test_parse_channels_any_order(self):
        text = ("HIERARCHY\nROOT a\n{\n OFFSET 0 0 0\n CHANNELS 4 Yrotation Xposition Yposition Zposition\n"
                " End Site\n {\n  OFFSET 0 1 0\n }\n}\nMOTION\nFrames: 1\nFrame Time: 0.5\n90 1 2 3\n")
        b = parse_bvh(text)
        assert np.allclose(b.local_rotations()[0, 0], rot("y", 90))
        assert np.allclose(b.channel_translations()[0, 0], [1, 2, 3])
        assert np.allclose(b.joints[0].end_site, [0, 1, 0])


# ============================================================================== HumanML3D
H_CHAINS = [[0, 2, 5, 8, 11], [0, 1, 4, 7, 10], [0, 3, 6, 9, 12, 15], [9, 14, 17, 19, 21], [9, 13, 16, 18, 20]]


def smpl_positions(local: np.ndarray, heading: np.ndarray, root: np.ndarray) -> np.ndarray:
    """(T, 22, 3) joint positions of SMPL_REST posed by local rotations (T, 22, 3, 3) under a
    heading yaw (T,) about y; root (T, 3) pelvis positions."""
    t = local.shape[0]
    world = np.zeros((t, 22, 3, 3))
    pos = np.zeros((t, 22, 3))
    for j, p in enumerate(SMPL_PARENTS):
        if p < 0:
            world[:, j] = Rotation.from_euler("y", heading[:, None]).as_matrix() @ local[:, j]
            pos[:, j] = root
        else:
            world[:, j] = world[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + np.einsum("tij,j->ti", world[:, p], SMPL_REST[j] - SMPL_REST[p])
    return pos


def qbetween(u, v):
    from sccl.motion.importers.retarget import shortest_rotation

    return shortest_rotation(u, v)


def encode_humanml3d(positions: np.ndarray) -> np.ndarray:
    """HumanML3D's feature extraction (motion_process.py: get_cont6d_params + process_file),
    rewritten with rotation matrices. positions: (T, 22, 3), first frame facing +z."""
    from sccl.motion.importers.humanml3d import RAW_OFFSETS

    t = positions.shape[0]
    r_hip, l_hip, sdr_r, sdr_l = 2, 1, 17, 16
    across = positions[:, r_hip] - positions[:, l_hip] + positions[:, sdr_r] - positions[:, sdr_l]
    forward = np.cross(np.array([[0, 1, 0]]), across)
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    root_quat = qbetween(forward, np.tile([0.0, 0.0, 1.0], (t, 1)))  # world -> facing
    local = np.zeros((t, 22, 3, 3))
    local[:, 0] = root_quat
    for chain in H_CHAINS:
        r = root_quat
        for a, b in zip(chain[:-1], chain[1:]):
            u = np.tile(RAW_OFFSETS[b], (t, 1))
            v = positions[:, b] - positions[:, a]
            rot_u_v = qbetween(u, v)
            loc = np.swapaxes(r, -1, -2) @ rot_u_v
            local[:, b] = loc
            r = r @ loc
    cont6d = np.concatenate([local[..., :, 0], local[..., :, 1]], -1)
    velocity = np.einsum("tij,tj->ti", root_quat[1:], positions[1:, 0] - positions[:-1, 0])
    r_vel_m = root_quat[1:] @ np.swapaxes(root_quat[:-1], -1, -2)
    r_velocity = np.arcsin(quat.from_matrix(r_vel_m)[:, 1])  # the quaternion's y component
    rifke = positions.copy()
    rifke[..., 0] -= positions[:, 0:1, 0]
    rifke[..., 2] -= positions[:, 0:1, 2]
    rifke = np.einsum("tij,tkj->tki", root_quat, rifke)
    root_data = np.concatenate([r_velocity[:, None], velocity[:, [0, 2]], rifke[:-1, 0, 1:2]], -1)
    ric = rifke[:-1, 1:].reshape(t - 1, -1)
    rot = cont6d[:-1, 1:].reshape(t - 1, -1)
    local_vel = np.einsum("tij,tkj->tki", root_quat[:-1], positions[1:] - positions[:-1]).reshape(t - 1, -1)
    feet = np.ones((t - 1, 4))
    return np.concatenate([root_data, ric, rot, local_vel, feet], -1)


class TestHumanML3D:
    def _clip(self, tmp_path, knee_deg=60.0, elbow_deg=0.0, turn_deg=90.0, t=21):
        local = np.tile(np.eye(3), (t, 22, 1, 1))
        local[:, 16] = rot("z", -90)
        local[:, 17] = rot("z", 90)
        local[:, 4] = rot("x", knee_deg)  # left knee flexion
        local[:, 18] = rot("y", -elbow_deg)  # left elbow flexion (forearm forward)
        heading = np.linspace(0, turn_deg * DEG, t)
        root = np.stack([np.linspace(0, 1, t), np.full(t, 0.95), np.zeros(t)], 1)
        pos = smpl_positions(local, heading, root)
        pos[..., 1] -= pos[..., 1].min()  # HumanML3D puts the floor at 0
        feats = encode_humanml3d(pos)
        assert feats.shape == (t - 1, 263)
        p = tmp_path / "000021.npy"
        np.save(p, feats)
        return p, heading[:-1]

    def test_known_answers_under_turning(self, tmp_path):
        from sccl.motion.importers.humanml3d import import_humanml3d

        p, heading = self._clip(tmp_path, knee_deg=60.0, elbow_deg=90.0, turn_deg=90.0)
        m = import_humanml3d(p, ground=False)
        assert m.fps == 20.0 and m.num_frames == 20
        assert np.allclose(angle(m, "left_knee"), -60 * DEG, atol=1e-4)
        assert np.allclose(angle(m, "right_knee"), 0.0, atol=1e-4)
        assert np.allclose(angle(m, "left_elbow"), 90 * DEG, atol=1e-4)
        assert np.allclose(np.unwrap(quat.heading_angle(m.root_rot)), heading, atol=1e-4)
        # no spurious leg twist against the pelvis while the body turns
        for j in ("right_hip", "left_hip", "chest", "neck", "right_shoulder", "left_shoulder", "right_ankle"):
            assert np.allclose(np.abs(joint_quat(m, j)[:, 3]), 1.0, atol=1e-4), j

    def test_bad_feature_file(self, tmp_path):
        from sccl.motion.importers.humanml3d import import_humanml3d

        p = tmp_path / "x.npy"
        np.save(p, np.zeros((5, 251)))
        with pytest.raises(UserError, match=r"x\.npy: expected HumanML3D new_joint_vecs of shape \(T, 263\)"):
            import_humanml3d(p)


# ==================================================================== position-based retargeting
# A Unity-style skeleton (the Bandai Namco layout): every bone along its joint's local x axis,
# joint frames turned about their bones by arbitrary angles, 6 channels on every joint whose
# position channels hold the OFFSET (so the rest pose, all rotations zero, is a folded
# skeleton), a 'joint_Root' above the Hips. Its poses come from a known humanoid motion, so
# the right answer is that motion's bone directions and hinge angles.
UNITY_JOINTS = [  # name, parent, humanoid body it moves with, point: body origin or a point in that body
    ("Hips", None, "root", None), ("Spine", "Hips", "root", (0.0, 0.12, 0.0)), ("Chest", "Spine", "chest", None),
    ("Neck", "Chest", "neck", None), ("Head", "Neck", "neck", (0.0, 0.2, 0.0)),
    ("Shoulder_L", "Chest", "chest", (-0.02, 0.22, -0.08)), ("UpperArm_L", "Shoulder_L", "left_shoulder", None),
    ("LowerArm_L", "UpperArm_L", "left_elbow", None), ("Hand_L", "LowerArm_L", "left_wrist", None),
    ("Shoulder_R", "Chest", "chest", (-0.02, 0.22, 0.08)), ("UpperArm_R", "Shoulder_R", "right_shoulder", None),
    ("LowerArm_R", "UpperArm_R", "right_elbow", None), ("Hand_R", "LowerArm_R", "right_wrist", None),
    ("UpperLeg_L", "Hips", "left_hip", None), ("LowerLeg_L", "UpperLeg_L", "left_knee", None),
    ("Foot_L", "LowerLeg_L", "left_ankle", None), ("Toes_L", "Foot_L", "left_ankle", (0.13, -0.035, 0.0)),
    ("UpperLeg_R", "Hips", "right_hip", None), ("LowerLeg_R", "UpperLeg_R", "right_knee", None),
    ("Foot_R", "LowerLeg_R", "right_ankle", None), ("Toes_R", "Foot_R", "right_ankle", (0.13, -0.035, 0.0)),
]
MIXAMO_NAMES = {"Hips": "Hips", "Spine": "Spine", "Chest": "Spine2", "Neck": "Neck", "Head": "Head",
                **{f"{a}_{s[0]}": f"{s}{b}" for s in ("Left", "Right") for a, b in (
                    ("Shoulder", "Shoulder"), ("UpperArm", "Arm"), ("LowerArm", "ForeArm"), ("Hand", "Hand"),
                    ("UpperLeg", "UpLeg"), ("LowerLeg", "Leg"), ("Foot", "Foot"), ("Toes", "ToeBase"))}}
SMPL_NAMES = {"Hips": "Pelvis", "Spine": "Spine1", "Chest": "Spine3", "Neck": "Neck", "Head": "Head",
              **{f"{a}_{s}": f"{s}_{b}" for s in ("L", "R") for a, b in (
                  ("Shoulder", "Collar"), ("UpperArm", "Shoulder"), ("LowerArm", "Elbow"), ("Hand", "Wrist"),
                  ("UpperLeg", "Hip"), ("LowerLeg", "Knee"), ("Foot", "Ankle"), ("Toes", "Foot"))}}
NAMINGS = {"unity": lambda n: n, "mixamo": lambda n: "mixamorig:" + MIXAMO_NAMES[n], "smpl": lambda n: SMPL_NAMES[n]}


def humanoid_source_motion(t: int = 16, seed: int = 0, knee_sign: float = -1.0) -> Motion:
    """A smooth, varied humanoid motion (first frame facing +x, pitched forward)."""
    rng = np.random.default_rng(seed)
    ph = np.linspace(0, 2 * np.pi, t)
    root = np.stack([Rotation.from_euler("yz", [40 * np.sin(p / 2), 8 + 5 * np.sin(p)], degrees=True).as_quat()
                     for p in ph])
    axes = rng.normal(size=(8, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    amp = rng.uniform(10, 35, size=8)
    rv = axes[None] * np.radians(amp[None, :, None] * np.sin(ph[:, None, None] + rng.uniform(0, 6, size=(1, 8, 1))))
    joint_rots = Rotation.from_rotvec(rv.reshape(-1, 3)).as_quat().reshape(t, 8, 4)
    knees = np.radians(knee_sign * (50 + 35 * np.sin(ph[:, None] + [0.0, 2.0])))
    elbows = np.radians(60 + 45 * np.sin(ph[:, None] + [1.0, 3.0]))
    angles = np.stack([knees[:, 0], elbows[:, 0], knees[:, 1], elbows[:, 1]], axis=1)
    pos = np.stack([0.02 * np.arange(t), 0.9 + 0.02 * np.sin(ph), 0.01 * np.arange(t)], axis=1)
    return Motion(30.0, pos, root, joint_rots, angles, label=None, name="src")


def write_unity_bvh(path: Path, motion, naming: str = "unity", cm_scale: float = 110.0) -> Path:
    """The Unity-style skeleton of UNITY_JOINTS posed as ``motion`` (see above), in cm."""
    kin = forward_kinematics(motion)
    W, P = kin.rotations, kin.positions
    t = motion.num_frames
    name = NAMINGS[naming]
    pos: dict[str, np.ndarray] = {}
    for j, parent, body, point in UNITY_JOINTS:
        b = B[body]
        pos[j] = P[:, b] if point is None else P[:, b] + W[:, b] @ np.array(point)
    children = {j: [c for c, p, _, _ in UNITY_JOINTS if p == j] for j, *_ in UNITY_JOINTS}
    glob: dict[str, np.ndarray] = {}
    for k, (j, parent, body, point) in enumerate(UNITY_JOINTS):
        b = B[body]
        if children[j]:  # local x along the bone to the first child, then an arbitrary twist about it
            d = W[0, b].T @ (pos[children[j][0]][0] - pos[j][0])
            c = Rotation.align_vectors([d], [[1.0, 0, 0]])[0].as_matrix() @ rot("x", 37.0 * (k + 1))
        else:
            c = rot("z", 25.0 + k) @ rot("y", 40.0)
        glob[j] = W[:, b] @ c
    lines = ["HIERARCHY", "ROOT joint_Root", "{", "  OFFSET 0 0 0",
             "  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"]
    cols: list[np.ndarray] = [np.zeros((t, 6))]

    def emit(j: str, parent: str | None, depth: int) -> None:
        pad = "  " * depth
        if parent is None:
            off = np.array([0.0, 93.9, -3.0])  # overridden by the position channels
            trans = pos[j] * cm_scale
            local = glob[j]
        else:
            off = glob[parent][0].T @ (pos[j][0] - pos[parent][0]) * cm_scale
            trans = np.tile(off, (t, 1))
            local = np.swapaxes(glob[parent], -1, -2) @ glob[j]
        lines.extend([pad + f"JOINT {name(j)}", pad + "{", pad + "  OFFSET " + " ".join(f"{v:.6f}" for v in off),
                      pad + "  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            cols.append(np.concatenate([trans, Rotation.from_matrix(local).as_euler("ZXY", degrees=True)], axis=1))
        for c in children[j]:
            emit(c, j, depth + 1)
        if not children[j]:
            lines.extend([pad + "  End Site", pad + "  {", pad + "    OFFSET 0 0 0", pad + "  }"])
        lines.append(pad + "}")

    emit("Hips", None, 1)
    lines += ["}", "MOTION", f"Frames: {t}", f"Frame Time: {1 / motion.fps:.7f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in np.concatenate(cols, axis=1)]
    path.write_text("\n".join(lines) + "\n")
    return path


BONE_PAIRS = [("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("left_hip", "left_knee"),
              ("left_knee", "left_ankle"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
              ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("chest", "neck")]


def bone_dirs(motion) -> np.ndarray:
    p = forward_kinematics(motion).positions
    d = np.stack([p[:, B[b]] - p[:, B[a]] for a, b in BONE_PAIRS], axis=1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


class TestPositionFit:
    @pytest.mark.parametrize("naming", ["unity", "mixamo", "smpl"])
    def test_folded_rest_pose_known_answers(self, tmp_path, naming):
        from sccl.motion.importers.bvh import bvh_fit, read_bvh
        from sccl.motion.importers.quality import fit_report

        src = humanoid_source_motion()
        p = write_unity_bvh(tmp_path / "take.bvh", src, naming)
        rest = np.array([0.0, 0.0, 0.0])  # the file's rest pose is folded: the spine is horizontal
        bvh = read_bvh(p)
        spine = [j.offset for j in bvh.joints if j.name.endswith(("Spine", "Spine1"))][0]
        assert abs(spine[1]) < 1e-6 * np.linalg.norm(spine) + 1e-9 and not np.allclose(spine, rest)
        fit = bvh_fit(p, ground=False)
        m = fit.motion
        err = np.degrees(np.arccos(np.clip(np.sum(bone_dirs(m) * bone_dirs(src), axis=-1), -1, 1)))
        assert err.max() < 1.0, err.max()
        assert np.abs(m.joint_angles - src.joint_angles).max() < np.radians(0.5)
        rep = fit_report(fit)
        assert rep["bone_err_p95_deg"] < 1.0 and rep["clamped_pct"] == 0.0
        assert rep["convention"] == {"unity": "unity", "mixamo": "cmu/mixamo", "smpl": "smpl"}[naming]
        # the scale: humanoid-sized again (the file is a 1.1x larger body, in cm: read as metres first)
        assert fit.scale == pytest.approx(1 / 1.1, rel=1e-3)

    def test_hinge_clamps_and_refusal(self, tmp_path, capsys):
        from sccl.loop.cli import main

        src_dir = tmp_path / "src"
        src_dir.mkdir()
        write_unity_bvh(src_dir / "bent_backwards.bvh", humanoid_source_motion(knee_sign=1.0))
        assert main(["import", "--format", "bvh", str(src_dir), str(tmp_path / "ds")]) == 1
        cap = capsys.readouterr()
        assert "REFUSED  bent_backwards.bvh" in cap.out and "clamped_pct 100.0% > 25%" in cap.out
        assert "every clip was refused" in cap.err and "\n" not in cap.err.strip()
        assert sorted(x.name for x in (tmp_path / "ds").iterdir()) == ["import_report.csv"]
        assert main(["import", "--format", "bvh", "--accept-all", str(src_dir), str(tmp_path / "ds")]) == 0
        rows = list(csv.DictReader(open(tmp_path / "ds" / "import_report.csv")))
        assert rows[0]["status"] == "accepted" and "clamped_pct" in rows[0]["reasons"]
        assert float(rows[0]["clamp_max_deg"]) == pytest.approx(85.0, abs=0.5)
        # importing again without --accept-all removes the clip the earlier import wrote
        assert (tmp_path / "ds" / "bent_backwards.txt").exists()
        assert main(["import", "--format", "bvh", str(src_dir), str(tmp_path / "ds")]) == 1
        assert not (tmp_path / "ds" / "bent_backwards.txt").exists()

    def test_degenerate_hinge_is_refused(self):
        from sccl.motion.importers.quality import refusal_reasons

        rep = {"_hinge_std": {"right_knee": 0.0, "left_knee": 12.0}, "_source_bend_std": {"right_knee": 9.0}}
        assert refusal_reasons(rep) == ["right_knee is constant (std 0.00 deg) while the source bends it (std 9.0 deg)"]
        assert refusal_reasons({"bone_err_mean_deg": 3.0, "contact_agreement": 0.9, "penetrate_mm": float("nan")}) == []

    def test_round_trip_through_export(self, tmp_path):
        from sccl.loop.cli import main
        from sccl.motion.importers.bvh import bvh_fit

        src_dir = tmp_path / "src"
        src_dir.mkdir()
        write_unity_bvh(src_dir / "take.bvh", humanoid_source_motion(t=12))
        assert main(["import", "--format", "bvh", str(src_dir), str(tmp_path / "ds")]) == 0
        assert main(["export", "--format", "bvh", str(tmp_path / "ds"), str(tmp_path / "bvh")]) == 0
        assert main(["import", "--format", "bvh", str(tmp_path / "bvh"), str(tmp_path / "ds2")]) == 0
        first = read_clip(tmp_path / "ds" / "take.txt").motion
        again = read_clip(tmp_path / "ds2" / "take.txt").motion
        assert np.abs(first.body_positions() - again.body_positions()).max() < 1e-3  # exact read-back, 6-decimal files
        # the exported file fitted like any other skeleton: same joints, same hinges
        refit = bvh_fit(tmp_path / "bvh" / "take.bvh", ground=False).motion
        assert np.abs(refit.body_positions() - first.body_positions()).max() < 1e-3
        assert np.abs(refit.joint_angles - first.joint_angles).max() < np.radians(0.5)

    def test_position_channels_replace_offsets_only_when_they_hold_them(self, tmp_path):
        from sccl.motion.importers.bvh import position_channels_absolute, read_bvh

        assert position_channels_absolute(read_bvh(write_unity_bvh(tmp_path / "u.bvh", humanoid_source_motion(t=3))))
        cmu = write_cmu_bvh(tmp_path / "c.bvh", [BVH_ARMS_DOWN])
        assert not position_channels_absolute(read_bvh(cmu))


class TestLabels:
    def _dataset(self, tmp_path) -> Path:
        src = tmp_path / "data"
        src.mkdir()
        m = humanoid_source_motion(t=4)
        for name, content, style in (("dataset-1_walk_normal_001", 0, 0), ("dataset-1_walk-back_happy_002", 3, 1),
                                     ("dataset-1_run_happy_001", 1, 1)):
            write_unity_bvh(src / f"{name}.bvh", m)
            (src / f"{name}.json").write_text(json.dumps({"content": content, "style": style}))
        (tmp_path / "content_label.txt").write_text("dataset-1_walk\ndataset-1_run\ndataset-1_dash\ndataset-1_walk-back\n")
        return src

    def _names(self, d: Path) -> list[str]:
        return sorted(p.name for p in d.glob("*.txt"))

    def test_regex_sidecar_and_csv(self, tmp_path):
        from sccl.loop.cli import main

        src = self._dataset(tmp_path)
        common = ["import", "--format", "bvh", "--accept-all", str(src)]
        assert main(common + [str(tmp_path / "a"), "--label-regex", "dataset-1_(?P<label>[^_]+)_"]) == 0
        assert self._names(tmp_path / "a") == ["run__dataset-1_run_happy_001.txt", "walk-back__dataset-1_walk-back_happy_002.txt",
                                               "walk__dataset-1_walk_normal_001.txt"]
        assert [r.motion.label for r in read_directory(tmp_path / "a")] == ["run", "walk-back", "walk"]
        assert main(common + [str(tmp_path / "b"), "--label-sidecar", "content",
                              "--label-list", str(tmp_path / "content_label.txt")]) == 0
        assert [r.motion.label for r in read_directory(tmp_path / "b")] == [
            "dataset-1_run", "dataset-1_walk-back", "dataset-1_walk"]
        (tmp_path / "labels.csv").write_text("file,label\ndataset-1_walk_normal_001.bvh,stroll\n"
                                             "dataset-1_walk-back_happy_002,backwards\ndataset-1_run_happy_001.bvh,jog\n")
        assert main(common + [str(tmp_path / "c"), "--label-csv", str(tmp_path / "labels.csv")]) == 0
        assert sorted(r.motion.label for r in read_directory(tmp_path / "c")) == ["backwards", "jog", "stroll"]

    @pytest.mark.parametrize("extra,match", [
        (["--label-regex", "nomatch_(?P<label>x)"], r"dataset-1_run_happy_001\.bvh: --label-regex .* does not match"),
        (["--label-sidecar", "content"], r"dataset-1_run_happy_001\.json: content is an index \(1\); pass --label-list"),
        (["--label-sidecar", "genre"], r"dataset-1_run_happy_001\.json: no key 'genre'"),
        (["--label", "x", "--label-regex", "y"], r"choose one way of labelling, not --label and --label-regex"),
        (["--label-csv", "LABELS"], r"dataset-1_run_happy_001\.bvh: not in the label CSV"),
    ])
    def test_label_errors_are_one_line(self, tmp_path, capsys, extra, match):
        from sccl.loop.cli import main

        src = self._dataset(tmp_path)
        (tmp_path / "labels.csv").write_text("file,label\nother.bvh,x\n")
        extra = [str(tmp_path / "labels.csv") if e == "LABELS" else e for e in extra]
        assert main(["import", "--format", "bvh", str(src), str(tmp_path / "o")] + extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
        import re as _re

        assert _re.search(match, err), err


BANDAI = Path(__file__).resolve().parents[2] / "shared" / "data" / "bandai-namco-1"


def test_shipped_bandai_config(tmp_path):
    """configs/bandai_namco.yaml is valid once its data.path holds an import, and says what is missing before."""
    from sccl.loop.config import ConfigError, expand_arms, load_config

    cfg_path = Path(__file__).resolve().parents[1] / "configs" / "bandai_namco.yaml"
    with pytest.raises(ConfigError, match=r"'data.path': directory .*does not exist"):
        load_config(cfg_path, [f"data.path={tmp_path / 'not_imported'}"])
    cfg = load_config(cfg_path, [f"data.path={tmp_path}"])
    assert cfg.data.path == str(tmp_path) and len(expand_arms(cfg)) == 3


class TestBandaiNamco:
    """The real dataset, when it is on this machine (never copied into the repository)."""

    def test_real_clips(self, tmp_path):
        if not (BANDAI / "data").is_dir():
            pytest.skip(f"Bandai Namco Research Motion Dataset 1 not found at {BANDAI} (see README: Importing your own mocap)")
        from sccl.motion.importers import import_dataset
        from sccl.motion.importers.labels import LabelRule

        src = tmp_path / "src"
        src.mkdir()
        for stem in ("dataset-1_walk_normal_001", "dataset-1_run_normal_001", "dataset-1_byebye_normal_001"):
            for ext in (".bvh", ".json"):
                (src / f"{stem}{ext}").symlink_to(BANDAI / "data" / f"{stem}{ext}")
        recs = import_dataset(src, tmp_path / "ds", "bvh",
                              labels=LabelRule(sidecar_key="content", label_list=str(BANDAI / "cfg" / "content_label.txt")))
        assert [r.label for r in recs] == ["dataset-1_byebye", "dataset-1_run", "dataset-1_walk"]
        for r in recs:
            assert r.target is not None and not r.refused, (r.source, r.refused)
            assert r.report["bone_err_mean_deg"] < 5.0 and r.report["hinge_min_std_deg"] > 0.1
            m = read_clip(r.target).motion
            assert 0.80 < m.root_pos[:, 1].mean() < 0.95  # the bundled walk: 0.86 m
        walk = read_clip(recs[2].target).motion
        assert np.degrees(np.ptp(walk.joint_angles[:, REVOLUTE_JOINTS.index("right_knee")])) > 30.0


# ==================================================================================== CLI
class TestCli:
    def test_import_export_and_data_info(self, tmp_path, capsys):
        from sccl.loop.cli import main

        src = tmp_path / "mocap"
        src.mkdir()
        write_cmu_bvh(src / "walk_01.bvh", [dict(BVH_ARMS_DOWN, LeftLeg=rot("x", 2 * i)) for i in range(60)], fps=30)
        (src / "sub").mkdir()
        write_cmu_bvh(src / "sub" / "run_02.bvh", [BVH_ARMS_DOWN] * 60, fps=30)
        assert main(["import", "--format", "bvh", str(src), str(tmp_path / "ds")]) == 0
        files = sorted(p.name for p in (tmp_path / "ds").iterdir())
        assert files == ["import_report.csv", "sub-run_02.txt", "walk_01.txt"]
        report = list(csv.DictReader(open(tmp_path / "ds" / "import_report.csv")))
        assert [r["status"] for r in report] == ["ok", "ok"] and float(report[0]["bone_err_mean_deg"]) < 1.0
        raws = read_directory(tmp_path / "ds")
        assert [r.motion.label for r in raws] == ["sub-run_02", "walk_01"]
        assert read_clip(tmp_path / "ds" / "walk_01.txt").motion.fps == pytest.approx(30.0)
        assert main(["data", "info", "--path", str(tmp_path / "ds"), "--json"]) == 0
        out = capsys.readouterr().out
        info = json.loads(out[out.index("{"):])
        assert info["clips"] == 2 and info["source_fps"] == [30.0]
        assert main(["export", "--format", "bvh", str(tmp_path / "ds"), str(tmp_path / "bvh")]) == 0
        assert sorted(p.name for p in (tmp_path / "bvh").iterdir()) == ["sub-run_02.bvh", "walk_01.bvh"]
        assert main(["import", "--format", "bvh", "--label", "walk", str(tmp_path / "bvh"), str(tmp_path / "ds2")]) == 0
        assert sorted(p.name for p in (tmp_path / "ds2").iterdir()) == [
            "import_report.csv", "walk__sub-run_02.txt", "walk__walk_01.txt"]
        again = read_clip(tmp_path / "ds2" / "walk__walk_01.txt").motion
        first = read_clip(tmp_path / "ds" / "walk_01.txt").motion
        assert np.abs(first.body_positions() - again.body_positions()).max() < 1e-3  # 6-decimal files

    def test_import_amass_cli(self, tmp_path, body_models):
        src = tmp_path / "amass" / "subject1"
        src.mkdir(parents=True)
        write_amass(src / "jump_poses.npz", ARMS_DOWN, STAND, frames=4)
        np.savez(src / "shape.npz", betas=np.zeros(16), gender="male")
        written = import_directory(tmp_path / "amass", tmp_path / "ds", "amass", body_models=str(body_models))
        assert [p.name for p in written] == ["subject1-jump_poses.txt"]
        assert read_clip(written[0]).motion.num_frames == 4

    def test_cli_errors_are_one_line(self, tmp_path, capsys):
        from sccl.loop.cli import main

        assert main(["import", "--format", "amass", str(tmp_path), str(tmp_path / "out")]) == 2
        assert "no amass files" in capsys.readouterr().err
        (tmp_path / "a.npz").write_bytes(b"junk")
        assert main(["import", "--format", "amass", str(tmp_path / "a.npz"), str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
