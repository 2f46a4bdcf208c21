"""Learned performance models. Depends on `telemetry` only (the job-history schema); readers of
logs and stores hand it frames.

Import what you need from its modules (nothing is re-exported here, so that importing
`models.features` does not pull in scikit-learn and skops):

- models.features    build_features, FEATURES: job-history rows → causal features
- models.estimators  RuntimeQuantileRegressor, WaitQuantileRegressor, UserEstimate, LastTwoAverage
- models.evaluation  evaluate_split, evaluate_rolling, runtime_metrics, wait_metrics
- models.artifacts   save_model, load_model, ModelRegistry, ModelCard, ModelRefused
- models.serving     predict_history: (p10, p50, p90) for job-history rows
- models.report      markdown_table, write_plots
"""
