"""The built-in collectors. Add a new one by importing its module here."""

from collectors import (
    containers,  # noqa: F401
    gpu,  # noqa: F401
    interconnect,  # noqa: F401
    kubelet,  # noqa: F401
    kubernetes,  # noqa: F401
    link_probe,  # noqa: F401
    node,  # noqa: F401
    prometheus_scrape,  # noqa: F401
    replay,  # noqa: F401
    slurm,  # noqa: F401
)
