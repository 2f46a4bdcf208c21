"""Scheduler hooks: advice handed to the schedulers where they already decide (kube-scheduler
extender, MultiKueue dispatcher, Slurm multi-cluster wrapper)."""
