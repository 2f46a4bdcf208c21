"""Placement advice: where should this job run, and what will happen there?

Modules, in reading order:

- `request`: the job as advice sees it (JobRequest: cores, walltime, data, objective, constraints).
- `outcome`: the answer (Band p10/p50/p90; SiteOutcome per site; Advice, ranked).
- `profile`: a batch site's free capacity over time from its cached forecast; inserting a job.
- `transfer`: link paths between sites and stage-in / stage-out times over them.
- `runtimes`: a new job's run time at each site (learned model, AVE2, translated by speed).
- `rank`: the engine — feasibility, per-site outcome, ranking, the stay-home rule. Pure.
- `herding`: handed-out advice booked as load until the job shows up.
- `log`: every answer stored; the caller's report; the outcome joined when the job ends.
- `live`: the Advisor over the live twin (what the API and `ctwin advise` call).
"""
