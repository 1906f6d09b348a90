"""sccl: self-correcting self-consuming training loops for human motion.

The repository keeps one folder per layer (``motion/``, ``simulators/``, ``generators/``,
``correctors/``, ``metrics/``, ``loop/``); they install as sub-packages of this one namespace
(``sccl.motion``, ``sccl.loop``, ...; see ``setup.cfg``), so sccl never claims the generic
top-level names other PyPI packages use. Plugins import ``sccl.correctors`` and
``sccl.generators``.
"""

__version__ = "0.1.0"
