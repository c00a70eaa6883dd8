"""What `jobline` exits with: the job's outcome for commands that wait for one (watch, submit --wait)."""

from __future__ import annotations

from typing import Final

from jobline.contract.vocabulary import TERMINAL_STATUSES, JobStatus

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_CANCELLED, EXIT_EXPIRED = 0, 1, 2, 3, 4
EXIT_BY_STATUS: Final[dict[str, int]] = {JobStatus.COMPLETED: EXIT_OK, JobStatus.FAILED: EXIT_FAILED,
                         JobStatus.CANCELLED: EXIT_CANCELLED, JobStatus.EXPIRED: EXIT_EXPIRED}
TERMINAL: Final = TERMINAL_STATUSES
