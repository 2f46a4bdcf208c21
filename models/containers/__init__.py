"""The container-configuration performance model: how containerisation choices (containers per
node, ranks per container, affinity, network mode, runtime) change a job's performance, learned
from published runs and from runs measured here."""
