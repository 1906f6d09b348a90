"""Generative models behind one interface (:class:`generators.base.Generator`): the motion
diffusion model (``"diffusion"``) and the Gaussian toys (``"gaussian"``,
``"gaussian_mixture"``). Build by name with :func:`build_generator`; restore a checkpoint with
:func:`load_generator`."""

from sccl.generators.base import FORMAT_VERSION, CheckpointError, Generator, GeneratorConfigError
from sccl.generators.registry import available_generators, build_generator, generator_class, load_generator

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "Generator",
    "GeneratorConfigError",
    "available_generators",
    "build_generator",
    "load_generator",
]
