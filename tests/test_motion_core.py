"""Motion type, DeepMimic reader/writer and quaternion helpers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sccl.motion import Motion, MotionError
from sccl.motion import quaternion as quat
from sccl.motion.deepmimic import FRAME_WIDTH, list_clip_files, read_clip, read_directory, write_clip


def make_motion(t: int = 5, **kw) -> Motion:
    rng = np.random.default_rng(0)
    args = dict(
        fps=30.0,
        root_pos=rng.normal(size=(t, 3)),
        root_rot=quat.normalize(rng.normal(size=(t, 4))),
        joint_rots=quat.normalize(rng.normal(size=(t, 8, 4))),
        joint_angles=rng.normal(size=(t, 4)),
    )
    args.update(kw)
    return Motion(**args)


def test_bundled_clips_read_with_expected_totals():
    clips = read_directory()
    assert len(clips) == 15
    total = sum(float(c.times[-1]) for c in clips)
    assert total == pytest.approx(33.565, abs=0.01)
    labels = {c.motion.label for c in clips}
    assert {"walk", "run", "backflip", "getup_faceup"} <= labels
    walk = next(c for c in clips if c.motion.label == "walk")
    assert walk.motion.num_frames == 39 and walk.motion.loop
    assert walk.motion.fps == pytest.approx(30.0, rel=1e-3)
    # stored quaternions are unit even though some bundled files are not (kick deviates by 0.42)
    for c in clips:
        assert np.allclose(np.linalg.norm(c.motion.joint_rots, axis=-1), 1.0)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("root_pos", np.full((5, 3), np.nan), "root_pos is not finite at frame 0"),
        ("root_rot", np.tile([0.0, 0.0, 0.0, 2.0], (5, 1)), "root_rot is not a unit quaternion at frame 0"),
        ("joint_rots", np.zeros((5, 7, 4)), "joint_rots must have shape"),
        ("joint_angles", np.zeros((4, 4)), "joint_angles has 4 frames but root_pos has 5"),
        ("fps", 0.0, "fps must be a positive"),
        ("fps", -3.0, "fps must be a positive"),
    ],
)
def test_motion_validation_names_field_and_frame(field, value, message):
    with pytest.raises(MotionError, match=message):
        make_motion(**{field: value})


def test_motion_rejects_empty_and_nonunit_joint_with_joint_name():
    with pytest.raises(MotionError, match="no frames"):
        make_motion(t=0, root_pos=np.zeros((0, 3)), root_rot=np.zeros((0, 4)), joint_rots=np.zeros((0, 8, 4)),
                    joint_angles=np.zeros((0, 4)))
    jr = quat.normalize(np.ones((5, 8, 4)))
    jr[3, 2] = [0, 0, 0, 0.5]
    with pytest.raises(MotionError, match=r"frame 3 \(joint right_hip\)"):
        make_motion(joint_rots=jr)


def test_writer_output_rereads_identically(tmp_path: Path):
    for raw in read_directory():
        out = write_clip(raw.motion, tmp_path / raw.motion.name)
        again = read_clip(out)
        assert again.motion.allclose(raw.motion, atol=1e-12)
        assert again.motion.loop == raw.motion.loop
        assert again.motion.label == raw.motion.label
    assert not list(tmp_path.glob(".*tmp*")), "atomic write left a temp file"


def _write(tmp_path: Path, body) -> Path:
    p = tmp_path / "clip.txt"
    p.write_text(body if isinstance(body, str) else json.dumps(body))
    return p


def _good_frames(n: int = 4) -> list[list[float]]:
    frame = [1 / 30, 0, 0.85, 0] + [1, 0, 0, 0] * 1
    for joint in ["chest", "neck", "rhip", "rknee", "rankle", "rsh", "relb", "lhip", "lknee", "lankle", "lsh", "lelb"]:
        frame += [0.0] if joint in ("rknee", "relb", "lknee", "lelb") else [1, 0, 0, 0]
    assert len(frame) == FRAME_WIDTH
    return [list(frame) for _ in range(n)]


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda f: "{not json", "not valid JSON"),
        (lambda f: {"Loop": "wrap"}, "'Frames'"),
        (lambda f: {"Frames": []}, "non-empty list"),
        (lambda f: {"Frames": f[:2] + [f[2][:40]]}, "frame 2 has 40 values, expected 44"),
        (lambda f: {"Frames": f[:1] + [[*f[1][:5], float("nan"), *f[1][6:]]]}, "frame 1 contains a non-finite"),
        (lambda f: {"Frames": [[0.0] + f[0][1:]] + f[1:]}, "frame 0 has duration 0"),
        (lambda f: {"Frames": [[-0.1] + f[0][1:]] + f[1:]}, "frame 0 has duration -0.1"),
        (lambda f: {"Frames": f[:1] + [f[1][:4] + [3, 0, 0, 0] + f[1][8:]]}, "frame 1: root rotation .* not a unit quaternion"),
        (lambda f: {"Frames": f[:1] + [f[1][:8] + ["x"] + f[1][9:]]}, "frame 1 value 8 is 'x'"),
        (lambda f: {"Loop": "bounce", "Frames": f}, "'Loop' must be"),
    ],
)
def test_malformed_files_name_file_and_frame(tmp_path, mutate, message):
    path = _write(tmp_path, mutate(_good_frames()))
    with pytest.raises(MotionError, match=message) as err:
        read_clip(path)
    assert str(path) in str(err.value)


def test_truncated_bundled_file_is_rejected(tmp_path):
    src = list_clip_files()[0].read_text()
    path = _write(tmp_path, src[: len(src) // 2])
    with pytest.raises(MotionError, match="not valid JSON"):
        read_clip(path)


def test_missing_directory_and_empty_directory(tmp_path):
    with pytest.raises(MotionError, match="does not exist"):
        list_clip_files(tmp_path / "nope")
    with pytest.raises(MotionError, match="no motion files"):
        list_clip_files(tmp_path)


finite = st.floats(min_value=-10, max_value=10, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.one_of(finite, st.just(float("nan")), st.text(max_size=2)), min_size=0, max_size=46),
                min_size=0, max_size=4))
def test_reader_never_crashes_with_anything_but_motion_error(tmp_path_factory, frames):
    """Property: arbitrary frame lists either load as a valid Motion or raise MotionError."""
    path = tmp_path_factory.mktemp("h") / "c.txt"
    path.write_text(json.dumps({"Frames": frames}))
    try:
        clip = read_clip(path)
    except MotionError:
        return
    assert np.isfinite(clip.motion.root_pos).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(0, 10_000))
def test_write_read_roundtrip_property(tmp_path_factory, t, seed):
    rng = np.random.default_rng(seed)
    m = make_motion(t=t, root_pos=rng.normal(size=(t, 3)), joint_angles=rng.uniform(-3, 3, size=(t, 4)))
    path = write_clip(m, tmp_path_factory.mktemp("w") / "m.txt")
    assert read_clip(path).motion.allclose(m, atol=1e-12)


def test_quaternion_helpers_agree_with_scipy():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(1)
    a, b = quat.normalize(rng.normal(size=(50, 4))), quat.normalize(rng.normal(size=(50, 4)))
    ra, rb = Rotation.from_quat(a), Rotation.from_quat(b)
    assert np.allclose(quat.canonical(quat.multiply(a, b)), quat.canonical((ra * rb).as_quat()))
    assert np.allclose(quat.to_matrix(a), ra.as_matrix())
    assert np.allclose(quat.from_matrix(ra.as_matrix()), quat.canonical(a))
    v = rng.normal(size=(50, 3))
    assert np.allclose(quat.rotate(a, v), ra.apply(v))
    mid = quat.slerp(a, b, 0.3)
    from scipy.spatial.transform import Slerp

    for i in range(5):
        ref = Slerp([0, 1], Rotation.from_quat([a[i], b[i]]))([0.3]).as_quat()[0]
        assert np.allclose(quat.canonical(mid[i]), quat.canonical(ref))
    m = quat.to_matrix(a)
    assert np.allclose(quat.sixd_to_matrix(quat.matrix_to_6d(m)), m)
    assert np.allclose(quat.heading_angle(quat.yaw(np.array([0.5, -2.0, 3.0]))), [0.5, -2.0, 3.0])
