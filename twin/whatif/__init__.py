"""What-ifs: the twin's state changed on copies (a job moved, nodes added or drained, a site or
link down, a link's bandwidth), the affected queues re-simulated, and the result side by side with
today: every affected job's predicted start, and a job's ranking."""

from twin.whatif.changes import Change, LinkBandwidth, LinkDown, MoveJob, Nodes, SiteDown, describe
from twin.whatif.engine import Comparison, JobShift, WhatIf

__all__ = [
    "Change",
    "Comparison",
    "JobShift",
    "LinkBandwidth",
    "LinkDown",
    "MoveJob",
    "Nodes",
    "SiteDown",
    "WhatIf",
    "describe",
]
