"""SIGTERM stops a run the way Ctrl-C does.

``kill``, ``timeout`` and job schedulers stop a process with SIGTERM, and it is the only signal
that reaches a run started in the background by a non-interactive shell (which starts it with
SIGINT ignored). Python's default is to die on the spot; once Ray is up, its driver's native
handler prints a stack dump (``*** SIGTERM received ***``) and exits. Either way the user gets
no word on what was kept. Raised as :class:`Terminated` (a ``KeyboardInterrupt``), the run
unwinds like an interrupted one: completed generations are on disk (every write is atomic),
Ray and the MLflow client shut down normally, and the command prints how to resume.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

#: exit status of a process ended by SIGTERM (128 + 15), as shells report it
EXIT_TERMINATED = 128 + signal.SIGTERM
#: exit status after Ctrl-C (128 + SIGINT)
EXIT_INTERRUPTED = 128 + signal.SIGINT


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt."""


#: set by the handler; what tells SIGTERM from Ctrl-C afterwards, since Ray may turn the
#: :class:`Terminated` raised inside ``ray.get``/``ray.wait`` into a plain KeyboardInterrupt
_terminated = threading.Event()


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    _terminated.set()
    raise Terminated(f"signal {signum}")


def stop_like_ctrl_c_on_sigterm() -> None:
    """Install the SIGTERM handler (again: ``ray.init`` replaces it). Only the main thread may
    install signal handlers; elsewhere (a notebook's worker thread) this does nothing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def exit_status() -> int:
    """143 after SIGTERM, 130 after Ctrl-C."""
    return EXIT_TERMINATED if _terminated.is_set() else EXIT_INTERRUPTED
