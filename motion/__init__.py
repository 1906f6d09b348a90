"""The motion domain: clips of the simulation humanoid, their file format, forward
kinematics, the learning feature representation and datasets.

Conventions (used everywhere): y-up world, metres, seconds, radians; quaternions x, y, z, w.
"""

from sccl.motion.clip import Motion, MotionError
from sccl.motion.errors import DataError, UserError

__all__ = ["Motion", "MotionError", "DataError", "UserError"]
