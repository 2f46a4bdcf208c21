"""The twin's queue engine: a deterministic, event-driven batch-scheduling simulator.

One engine serves whole-log replays (what-if studies, the SC'15 comparison) and live forecasts
(a site's state now → when each pending job starts). Modules, in reading order:

- `model`: jobs, partitions (processor- or node-granular), sites, live states; admission with its
  documented, counted corrections (kill at the requested time, missing or zero run times...).
- `predictors`: the runtime-predictor interface and the built-ins (requested time, clairvoyant,
  AVE2), with the per-user completion history.
- `policies`: FCFS, EASY, EASY++ (SJBF backfill order, prediction corrections; `reserve="p90"` plans
  running jobs at a quantile model's p90).
- `scheduler`: one partition's queue and the scheduling pass.
- `engine`: the event loop and its tie-breaking rules; `simulate` for a whole workload.
- `metrics`: wait, flow time, AVEbsld (tau = 10 s) as predictsim defines them; utilisation.
- `forecast`: predicted start of every pending job (and hypothetical ones) from a live state.
"""

from twin.sim.engine import Occupancy, SimResult, Simulator, TieBreak, queue_order, simulate
from twin.sim.errors import SimError, SimInputError, SimTimeError, UnknownPartitionError
from twin.sim.forecast import ForecastRun, forecast, forecast_run
from twin.sim.metrics import Metrics, compute
from twin.sim.model import (
    Corrections,
    Job,
    Partition,
    RunningJob,
    Site,
    SiteState,
    jobs_from_frame,
    jobs_from_history,
)
from twin.sim.policies import Policy
from twin.sim.predictors import (
    Ave2,
    BatchPredictor,
    Clairvoyant,
    History,
    Predictor,
    RequestedTime,
    RuntimePrediction,
    predict_all,
)

__all__ = [
    "Ave2",
    "BatchPredictor",
    "Clairvoyant",
    "Corrections",
    "ForecastRun",
    "History",
    "Job",
    "Metrics",
    "Occupancy",
    "Partition",
    "Policy",
    "Predictor",
    "RequestedTime",
    "RunningJob",
    "RuntimePrediction",
    "SimError",
    "SimInputError",
    "SimResult",
    "SimTimeError",
    "Simulator",
    "Site",
    "SiteState",
    "TieBreak",
    "UnknownPartitionError",
    "compute",
    "forecast",
    "forecast_run",
    "jobs_from_frame",
    "jobs_from_history",
    "predict_all",
    "queue_order",
    "simulate",
]
