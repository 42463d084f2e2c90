"""A finished (or interrupted) sweep's results as tables: one row per trial, one row per
trial x evaluation combination, read back from Tune's files and the MLflow child runs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient
from ray.tune import ExperimentAnalysis

from orchestrator.tuning import mlflow_runs
from orchestrator.tuning.evaluation_axes import variant_prefix
from orchestrator.tuning.tune_runner import TIME_ATTR, SweepPlan, load_plan

LR_METRIC = "lr"  # the rate each epoch trained at (worker.restarts.LogEpochLearningRate)


@dataclass
class SweepResults:
    plan: SweepPlan
    trials: pd.DataFrame  # one row per trained model, best first
    combinations: pd.DataFrame  # one row per model x evaluation setting, best first
    curves: dict[str, pd.DataFrame]  # trial id -> its per-epoch reports
    grad_norms: dict[str, pd.DataFrame]  # trial id -> step, grad_norm (from MLflow)
    learning_rates: dict[str, pd.DataFrame]  # trial id -> step, lr (each epoch's)
    pbt_starts: pd.DataFrame  # PBT: trial, start, from checkpoint, values (one row a start)

    @property
    def failed(self) -> pd.DataFrame:
        """Trials that ended in an error, with its one-line cause."""
        return self.trials[self.trials["status"] == "ERROR"]

    @property
    def axes(self) -> list[str]:
        return [*self.plan.sweep["space"], *self.evaluation_axes]

    @property
    def evaluation_axes(self) -> list[str]:
        return list(self.plan.sweep["evaluate"])

    @property
    def combination_metric(self) -> str:
        return "test metric" if self.evaluation_axes else self.plan.metric


def read_results(folder: Path) -> SweepResults:
    plan = load_plan(folder)
    analysis = ExperimentAnalysis(str(folder))
    curves = {trial.trial_id: _curve(analysis, trial) for trial in analysis.trials}
    logged = _from_child_runs(plan)
    rows = [_trial_row(plan, trial, curves[trial.trial_id], logged.errors)
            for trial in analysis.trials]
    trials = _ranked(pd.DataFrame(rows), plan.metric, plan.mode)
    combinations = _combinations(plan, analysis.trials, trials)
    return SweepResults(plan, trials, combinations, curves, logged.grad_norms,
                        logged.learning_rates, logged.pbt_starts)


def _curve(analysis: ExperimentAnalysis, trial: Any) -> pd.DataFrame:
    frame = analysis.trial_dataframes.get(trial.trial_id, pd.DataFrame())
    if TIME_ATTR not in frame:
        return pd.DataFrame()
    # the final report (after test) repeats the last epoch: keep one row per epoch
    return frame.drop_duplicates(TIME_ATTR, keep="first").sort_values(TIME_ATTR)


def _trial_row(plan: SweepPlan, trial: Any, curve: pd.DataFrame,
               errors: dict[str, str]) -> dict[str, Any]:
    last = trial.last_result or {}
    metric = plan.metric
    best = None
    if metric in curve:
        best = curve[metric].min() if plan.mode == "min" else curve[metric].max()
    epochs = int(last.get(TIME_ATTR, -1)) + 1
    return {
        "trial": trial.trial_id,
        **{key: trial.config.get(key) for key in plan.sweep["space"]},
        metric: best,
        "epochs": epochs,
        "status": trial.status,
        "stopped early": trial.status == "TERMINATED" and epochs < plan.max_epochs,
        "error": errors.get(trial.trial_id, "see the trial's error.txt")
        if trial.status == "ERROR" else "",
    }


def _combinations(plan: SweepPlan, tune_trials: list[Any], trials: pd.DataFrame) -> pd.DataFrame:
    """Each trained model at each evaluation setting; without evaluation axes, the trials."""
    if not plan.beam_sizes and plan.eval_variants == [{}]:
        return trials
    by_id = {trial.trial_id: trial for trial in tune_trials}
    rows = []
    for row in trials[trials["status"] != "ERROR"].to_dict("records"):
        last = by_id[row["trial"]].last_result or {}
        for variant, beam in itertools.product(plan.eval_variants, plan.beam_sizes or [None]):
            name = plan.beam_metric.format(k=beam) if beam else None
            values = {f"eval.{key}": value for key, value in variant.items()}
            if beam:
                values["eval.beam_size"] = beam
            rows.append({"trial": row["trial"],
                         **{key: row[key] for key in plan.sweep["space"]}, **values,
                         "test metric": last.get(variant_prefix(variant) + (name or ""))})
    return _ranked(pd.DataFrame(rows), "test metric", plan.mode)


def _ranked(frame: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    if frame.empty:
        return frame
    ranked = frame.sort_values(metric, ascending=mode == "min", na_position="last")
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked.reset_index(drop=True)


@dataclass
class ChildRunLogs:
    grad_norms: dict[str, pd.DataFrame]
    learning_rates: dict[str, pd.DataFrame]
    pbt_starts: pd.DataFrame
    errors: dict[str, str]  # trial id -> a failed trial's one-line cause


def _from_child_runs(plan: SweepPlan) -> ChildRunLogs:
    """What each trial's MLflow run logged step by step: gradient norms before clipping,
    the learning rate it trained at, (PBT) every start from a checkpoint, and why it failed."""
    client = MlflowClient(plan.tracking_uri)
    norms, rates, starts, errors = {}, {}, [], {}
    for run in mlflow_runs.children(client, plan.parent_run_id):
        trial = run.data.tags.get(mlflow_runs.TRIAL_TAG)
        if mlflow_runs.ERROR_TAG in run.data.tags:
            errors[trial] = run.data.tags[mlflow_runs.ERROR_TAG]
        norms[trial] = _history(client, run.info.run_id, "grad_norm", "grad_norm")
        if LR_METRIC in run.data.metrics:
            rates[trial] = _history(client, run.info.run_id, LR_METRIC, "lr")
        for number, (source, values) in enumerate(mlflow_runs.pbt_starts(run), start=1):
            starts.append({"trial": trial, "start": number, "from checkpoint": source,
                           "values": values})
    return ChildRunLogs(norms, rates, pd.DataFrame(starts), errors)


def _history(client: MlflowClient, run_id: str, key: str, column: str) -> pd.DataFrame:
    history = client.get_metric_history(run_id, key)
    return pd.DataFrame({"step": [m.step for m in history], column: [m.value for m in history]})
