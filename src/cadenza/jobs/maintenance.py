"""Periodic chores of the job system, scheduled by whichever process hosts them.

:class:`Maintenance` runs in a daemon thread: it sweeps expired job leases every third of
``job_lease_s`` (so a dead worker's job is noticed within about 1.3 leases) and applies retention
(:meth:`JobService.prune`) every ``cleanup_interval_s``. The local executor runs one; ``cadenza serve``
without local workers runs one itself. Any number of processes may run it against one database: every
change it makes is a conditional update.
"""

from __future__ import annotations

import threading
import time

import structlog

from cadenza.jobs.service import JobService

log = structlog.get_logger(__name__)


class Maintenance:
    def __init__(self, service: JobService) -> None:
        self.service = service
        settings = service.settings
        self.sweep_interval_s = max(0.2, settings.job_lease_s / 3)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.service.sweep_partial_uploads()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="cadenza-maintenance", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None

    def tick(self, *, cleanup: bool) -> None:
        """One round: sweep leases, and apply retention if ``cleanup``."""
        self.service.sweep_leases()
        if cleanup:
            self.service.prune()

    def _loop(self) -> None:
        last_cleanup = time.monotonic()
        while not self._stop.wait(self.sweep_interval_s):
            now = time.monotonic()
            due = now - last_cleanup >= self.service.settings.cleanup_interval_s  # a hot reload may change it
            try:
                self.tick(cleanup=due)
            except Exception:
                log.exception("maintenance tick failed")
            if due:
                last_cleanup = now
