"""SIGTERM stops a sweep the way Ctrl-C (SIGINT) does: Tune saves its state, the sweep can resume.

``kill PID``, ``systemd stop``, ``docker stop`` and batch schedulers send SIGTERM. Ray's driver
answered it with a C++ stack dump and exit 134 (the core worker installs a failure-signal handler
for SIGTERM during ``ray.init``), leaving no hint that ``--resume`` continues the sweep.

``arm()`` (the CLI calls it) installs a SIGTERM handler that records the signal and then does
whatever SIGINT would do now: during ``Tuner.fit`` Tune's handler (stop cleanly, save the
experiment state), otherwise ``KeyboardInterrupt``. ``ray.init`` replaces SIGTERM handlers, so
``rearm()`` (called by ``ntkmtl/sweep/tune.py`` right after Ray starts) installs it again; it
does nothing unless ``arm()`` was called, so library users keep their own handlers.
``disarm()`` restores the handler ``arm()`` found. ``exit_code()`` is the shell's convention for the stopping signal: 143 after SIGTERM, else 130.
"""

from __future__ import annotations

import signal
import threading

received: int | None = None  # SIGTERM once it arrived
_armed = False
_previous = None  # the SIGTERM handler before arm(), restored by disarm()


def arm() -> None:
    """Handle SIGTERM like SIGINT in this process from now on (and after ``ray.init``)."""
    global _armed, received, _previous
    if not _armed and threading.current_thread() is threading.main_thread():
        _previous = signal.getsignal(signal.SIGTERM)
    _armed, received = True, None
    _install()


def disarm() -> None:
    """Give SIGTERM back the handler it had before ``arm()`` (the CLI does when it returns)."""
    global _armed
    if _armed and _previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _previous)
    _armed = False


def rearm() -> None:
    """Re-install the handler after ``ray.init`` replaced it, if ``arm()`` was called."""
    if _armed:
        _install()


def exit_code() -> int:
    """128 + the signal that stopped the sweep: 143 after SIGTERM, 130 after SIGINT."""
    return 128 + (received or signal.SIGINT)


def _install() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum, frame) -> None:
    global received
    received = signum
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):  # Tune's (clean stop) or Python's default_int_handler (KeyboardInterrupt)
        handler(signal.SIGINT, frame)
    else:  # SIGINT ignored (a background job): still stop
        raise KeyboardInterrupt
