"""The simulator's exceptions. Bad input fails loudly with the job and the reason, never a hang.

SimError
├── SimInputError (also a ValueError)   a job or site the simulator cannot run as given
│   └── UnknownPartitionError           a partition the site does not have (the known ones named)
└── SimTimeError                        time going backwards (a submission or a state in the past)
"""

from __future__ import annotations

__all__ = ["SimError", "SimInputError", "SimTimeError", "UnknownPartitionError"]


class SimError(Exception):
    """Base of everything the simulator raises on purpose."""


class SimInputError(SimError, ValueError):
    """A job, partition or state that cannot be simulated as given (the message names it)."""


class UnknownPartitionError(SimInputError):
    """A job names a partition the site does not have."""


class SimTimeError(SimError):
    """Time went backwards: a submission before the simulator's clock, a job started in the future."""
