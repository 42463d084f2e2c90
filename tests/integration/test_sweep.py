"""`orchestrator sweep` for real: Ray Tune trials running Ray Train, a real MLflow store,
real shards; the report checked as tables and as rendered in headless Chromium."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from ray.tune import ExperimentAnalysis

from orchestrator.cli import main
from orchestrator.tuning import mlflow_runs
from orchestrator.tuning.sweep_results import read_results
from orchestrator.tuning.tune_runner import load_plan
from tests.tuning.test_sweep_config import write_sweep

CELLS, CLIPS, BEAMS = ["rnn", "gru", "lstm"], [0.5, 5.0], [1, 3, 5, 10]


@pytest.fixture(scope="module")
def beam_sweep(tmp_path_factory) -> Path:
    """cell x clip x beam size on the generated dates task: 6 models, 24 combinations."""
    folder = tmp_path_factory.mktemp("beam-sweep")
    path = write_sweep(
        folder, "dates-cell-clip-beam",
        {"task": "translation", "data.path": str(folder / "dates"), "data.sample": "dates",
         "data.batch_size": 32, "model.embedding_dim": 16, "model.hidden_size": 32,
         "train.max_epochs": 2, "train.batches_per_epoch": 25, "optim.lr": 0.01,
         "eval.max_length": 16},
        {"model.cell": {"grid": CELLS}, "optim.clip": {"grid": CLIPS}},
        evaluate={"eval.beam_size": BEAMS}, scheduler={"name": "none"},
    )
    run_sweep_here(folder, path)
    return folder / "sweeps" / "dates-cell-clip-beam"


def run_sweep_here(folder: Path, path: Path, exit_code: int = 0) -> None:
    """`orchestrator sweep` in this process; then every trial's Train workers must have
    given their CPUs back to the local Ray it started.

    A trial the scheduler stops takes its Train controller down with it, and Ray removes
    that controller's worker-group placement group afterwards, from a detached cleaner
    that polls the state API every second (ray.train.v2 PlacementGroupCleaner). On a
    loaded machine that took over 30 s once (CI, 2026-12-06), so the wait is generous;
    a placement group that is never removed still fails here, named."""
    import ray

    previous = Path.cwd()
    os.chdir(folder)
    try:
        assert main(["sweep", str(path)]) == exit_code
        deadline = time.monotonic() + 120
        while ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
            held = {pg_id: pg["bundles"] for pg_id, pg in ray.util.placement_group_table().items()
                    if pg["state"] != "REMOVED"}
            assert time.monotonic() < deadline, f"CPUs still held by placement groups {held}"
            time.sleep(0.5)
    finally:
        os.chdir(previous)
        ray.shutdown()


def test_beam_is_an_evaluation_axis_six_models_trained_not_24(beam_sweep):
    plan = load_plan(beam_sweep)
    client = MlflowClient(plan.tracking_uri)
    children = mlflow_runs.children(client, plan.parent_run_id)
    assert len(children) == 6
    assert sorted(p.name for p in (beam_sweep / "train").iterdir()) == sorted(
        f"trial-{run.data.tags[mlflow_runs.TRIAL_TAG]}" for run in children
    )  # one Ray Train run per model
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags[mlflow_runs.ATTEMPTS_TAG] == "1"
        assert {f"test_bleu_beam{k}" for k in BEAMS} <= set(run.data.metrics)
        # each model trained 2 epochs once: one validation per epoch
        assert len(client.get_metric_history(run.info.run_id, "val_bleu")) == 2
    assert client.get_run(plan.parent_run_id).info.status == "FINISHED"
    # with no scheduler to stop trials, a finished trial's actor process runs the next
    pids = {trial.last_result["pid"] for trial in ExperimentAnalysis(str(beam_sweep)).trials}
    assert len(pids) < len(children), pids


def test_report_tables_hold_every_combination_and_the_best(beam_sweep):
    plan = load_plan(beam_sweep)
    client = MlflowClient(plan.tracking_uri)
    expected = {}
    for run in mlflow_runs.children(client, plan.parent_run_id):
        for k in BEAMS:
            params = run.data.params
            key = (params["model.cell"], float(params["optim.clip"]), k)
            expected[key] = run.data.metrics[f"test_bleu_beam{k}"]
    assert set(expected) == set(itertools.product(CELLS, CLIPS, BEAMS))
    best_key = max(expected, key=expected.get)

    tables = pd.read_html(beam_sweep / "report.html")
    trials = next(t for t in tables if "val_bleu" in t.columns)
    combinations = next(t for t in tables if "eval.beam_size" in t.columns)
    assert len(trials) == 6 and len(combinations) == 24
    top = combinations.iloc[0]
    # the page shows 4 significant digits
    assert top["test metric"] == pytest.approx(expected[best_key], rel=1e-3)
    assert expected[(top["model.cell"], top["optim.clip"], top["eval.beam_size"])] == max(
        expected.values())
    summary = (beam_sweep / "report.md").read_text()
    assert f"best: trial={top['trial']}" in summary
    assert "## Effect of each axis" in summary and "eval.beam_size" in summary


def test_the_parent_run_carries_the_report_and_links_every_trial_run(beam_sweep):
    plan = load_plan(beam_sweep)
    client = MlflowClient(plan.tracking_uri)
    logged = {item.path for item in client.list_artifacts(plan.parent_run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/report_plots"} <= logged
    plots = {item.path for item in client.list_artifacts(plan.parent_run_id,
                                                         "report/report_plots")}
    # report.md's image links resolve inside the run's artifacts
    for link in re.findall(r"\]\((report_plots/[^)]+)\)", (beam_sweep / "report.md").read_text()):
        assert f"report/{link}" in plots
    parent = client.get_run(plan.parent_run_id)
    description = parent.data.tags["mlflow.note.content"]
    children = mlflow_runs.children(client, plan.parent_run_id)
    for run in children:
        assert f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id})" in description
        # a trial's run says who started it and how, like its sweep's
        for tag in ("mlflow.source.name", "mlflow.user", "mlflow.source.git.commit"):
            assert run.data.tags[tag] == parent.data.tags[tag]
    # ranked best first, as the report ranks them
    top_trial = read_results(beam_sweep).trials.iloc[0]["trial"]
    best = next(run for run in children if run.data.tags[mlflow_runs.TRIAL_TAG] == top_trial)
    first = next(line for line in description.splitlines() if line.startswith("| 1 |"))
    assert best.info.run_id in first


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_report_renders_its_plots_in_headless_chromium(beam_sweep, tmp_path):
    page = beam_sweep / "report.html"
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    plots = re.findall(r"<img[^>]*class=\"plot\"[^>]*>", dom)
    assert len(plots) == 3  # axis effects, learning curves, gradient norms
    for tag in plots:  # set by each image's onload: the PNG decoded, with a real size
        width, height = map(int, re.search(r'data-rendered="(\d+)x(\d+)"', tag).groups())
        assert width > 200 and height > 200
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={tmp_path / 'report.png'}", "--window-size=1200,2000",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    assert (tmp_path / "report.png").stat().st_size > 10_000


def markov_lm(dataset: Path, epochs: int, batches: int) -> dict:
    """A tiny character LM on the Markov shards."""
    return {"data.path": str(dataset), "data.sample": None, "data.batch_size": 8,
            "data.bptt": 32, "model.embedding_dim": 16, "model.hidden_size": 32,
            "train.max_epochs": epochs, "train.batches_per_epoch": batches,
            "generate.length": 20}


def test_a_failed_trial_is_counted_named_with_its_cause_and_fails_the_sweep(
    tmp_path, markov_dataset, capsys
):
    gone = tmp_path / "deleted-dataset"  # as if removed while the sweep ran
    path = write_sweep(tmp_path, "one-fails", markov_lm(markov_dataset, epochs=1, batches=4),
                       {"data.path": {"grid": [str(markov_dataset), str(gone)]}},
                       scheduler={"name": "none"})
    run_sweep_here(tmp_path, path, exit_code=1)
    assert "error: 1 trials failed" in capsys.readouterr().err
    folder = tmp_path / "sweeps" / "one-fails"
    results = read_results(folder)
    [failed] = results.failed.to_dict("records")
    assert failed["data.path"] == str(gone) and str(gone / "dataset.json") in failed["error"]
    markdown = (folder / "report.md").read_text()
    assert "1 models trained of 2 planned (1 failed)" in markdown
    assert "Failed trials (1)" in markdown
    client = MlflowClient(load_plan(folder).tracking_uri)
    assert client.get_run(load_plan(folder).parent_run_id).data.tags[
        "sweep.failed_trials"] == "1"


def test_asha_stops_weak_trials_and_ends_their_runs(tmp_path, markov_dataset):
    path = write_sweep(
        tmp_path, "markov-asha",
        markov_lm(markov_dataset, epochs=3, batches=8),
        {"optim.lr": {"grid": [0.03, 0.01, 0.0003, 0.0001]}},  # strong trials set the bar
        scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2},
    )
    run_sweep_here(tmp_path, path)
    folder = tmp_path / "sweeps" / "markov-asha"
    plan = load_plan(folder)
    client = MlflowClient(plan.tracking_uri)
    children = mlflow_runs.children(client, plan.parent_run_id)
    assert len(children) == 4
    stopped = {run.data.tags[mlflow_runs.TRIAL_TAG] for run in children
               if run.data.tags[mlflow_runs.STOPPED_EARLY_TAG] == "true"}
    assert stopped, "ASHA stopped no trial"  # the tiny learning rates come last and lag
    # Tune's record says where the scheduler stopped a trial; MLflow may hold an epoch more,
    # logged by the Train worker while the stop reached it (epochs here take ~0.4 s)
    tune_epochs = {trial.trial_id: int(trial.last_result["epoch"]) + 1
                   for trial in ExperimentAnalysis(str(folder)).trials}
    for run in children:
        trial = run.data.tags[mlflow_runs.TRIAL_TAG]
        assert run.info.status == ("KILLED" if trial in stopped else "FINISHED")
        assert (tune_epochs[trial] < 3) if trial in stopped else (tune_epochs[trial] == 3)
        if trial not in stopped:
            assert len(client.get_metric_history(run.info.run_id, "val_perplexity")) == 3
    tables = pd.read_html(folder / "report.html")
    early = next(t for t in tables if list(t.columns[:1]) == ["trial"] and "epochs" in t
                 and "status" not in t)
    assert set(early["trial"]) == stopped


def test_pbt_clones_the_strong_trial_into_the_weak_one(tmp_path, markov_dataset):
    path = write_sweep(
        tmp_path, "markov-pbt",
        markov_lm(markov_dataset, epochs=4, batches=8),
        {"optim.lr": {"grid": [0.03, 0.0001]}},  # the second barely learns on its own
        # synchronous: an epoch here takes 0.25 s, less than the trials' start skew, so an
        # asynchronous PBT could see each trial alone and never compare them
        scheduler={"name": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.5,
                   "synch": True},
    )
    run_sweep_here(tmp_path, path)
    plan = load_plan(tmp_path / "sweeps" / "markov-pbt")
    client = MlflowClient(plan.tracking_uri)
    runs = {run.data.params["optim.lr"]: run
            for run in mlflow_runs.children(client, plan.parent_run_id)}
    strong, weak = runs["0.03"], runs["0.0001"]
    assert strong.info.status == weak.info.status == "FINISHED"
    # the weak trial continued from the strong trial's checkpoint...
    assert weak.data.tags[mlflow_runs.CLONED_FROM_TAG] == strong.data.tags[mlflow_runs.TRIAL_TAG]
    assert weak.data.tags[mlflow_runs.HISTORY_TAG]
    # a trial PBT paused resumes from its own checkpoint: not a clone
    assert strong.data.tags.get(mlflow_runs.CLONED_FROM_TAG) != strong.data.tags[
        mlflow_runs.TRIAL_TAG]
    perplexity = [m.value for m in client.get_metric_history(weak.info.run_id, "val_perplexity")]
    assert perplexity[-1] < 0.6 * perplexity[0]  # ...so it learned what it could not alone
    assert perplexity[-1] < 1.5 * strong.data.metrics["val_perplexity"]
    # ...at the learning rate PBT gave it, not the one restored with the optimiser state
    lr = client.get_metric_history(weak.info.run_id, "lr")
    assert lr[-1].value == pytest.approx(float(weak.data.tags["pbt.optim.lr"]))
    assert "test_perplexity" in weak.data.metrics
    # the report lists each start from a checkpoint and draws the learning rates
    starts = read_results(tmp_path / "sweeps" / "markov-pbt").pbt_starts
    weak_id, strong_id = (run.data.tags[mlflow_runs.TRIAL_TAG] for run in (weak, strong))
    clones = starts[starts["trial"] == weak_id]
    assert clones["from checkpoint"].str.startswith(f"{strong_id}/checkpoint_").any()
    report = (tmp_path / "sweeps" / "markov-pbt" / "report.md").read_text()
    assert "Population based training" in report and "learning_rates.png" in report


def _finished_children(tracking_db: Path, parent_run_id: str) -> int:
    client = MlflowClient(f"sqlite:///{tracking_db}")
    return len(mlflow_runs.children(client, parent_run_id, "attributes.status = 'FINISHED'"))


TRIALS = 2


@pytest.mark.parametrize("interrupt", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_interrupted_sweep_resumes_with_every_trial_done_once(tmp_path, markov_dataset,
                                                              interrupt):
    path = write_sweep(
        tmp_path, "markov-resume",
        markov_lm(markov_dataset, epochs=2, batches=10),
        {"model.cell": {"grid": ["rnn", "gru"]}, "optim.clip": {"grid": [0.5]}},
        scheduler={"name": "none"}, max_concurrent_trials=1,
    )
    command = [sys.executable, "-m", "orchestrator.cli", "sweep", str(path)]
    driver = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "sweeps" / "markov-resume"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        if (folder / "sweep.json").exists():
            plan = load_plan(folder)
            if _finished_children(tmp_path / "mlflow.db", plan.parent_run_id) >= 1:
                break
        time.sleep(1)
    assert driver.poll() is None, f"sweep ended before the interrupt: {driver.stderr.read()}"
    driver.send_signal(interrupt)
    _, err = driver.communicate(timeout=120)
    client = MlflowClient(plan.tracking_uri)
    before = {run.data.tags[mlflow_runs.TRIAL_TAG]: run
              for run in mlflow_runs.children(client, plan.parent_run_id)}
    if interrupt == signal.SIGINT:  # Ctrl-C: the driver ends what it started, and says so
        assert driver.returncode == 130, err
        assert "orchestrator sweep --resume" in err
        assert all(run.info.status != "RUNNING" for run in before.values())
        assert client.get_run(plan.parent_run_id).info.status == "KILLED"
    else:  # a killed driver ends nothing; its local Ray and the trials die with it
        assert driver.returncode == -signal.SIGKILL
    # finished in Tune's own record (a trial interrupted while it wrapped up is not)
    done_before = {trial.trial_id for trial in ExperimentAnalysis(str(folder)).trials
                   if trial.status == "TERMINATED"}
    assert len(done_before) < TRIALS
    assert len(done_before) >= 1 or interrupt == signal.SIGKILL
    assert all(before[trial].info.status == "FINISHED" for trial in done_before)

    resumed = subprocess.run([sys.executable, "-m", "orchestrator.cli", "sweep", "--resume",
                              str(folder)], cwd=tmp_path, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    after = mlflow_runs.children(client, plan.parent_run_id)
    trial_ids = [run.data.tags[mlflow_runs.TRIAL_TAG] for run in after]
    assert len(trial_ids) == len(set(trial_ids)) == TRIALS  # no trial lost, none doubled
    for run in after:
        trial = run.data.tags[mlflow_runs.TRIAL_TAG]
        assert run.info.status == "FINISHED"
        if trial in done_before:  # never rerun: started once, ended when it first did
            assert run.data.tags[mlflow_runs.ATTEMPTS_TAG] == "1"
            assert run.info.end_time == before[trial].info.end_time
        # every model validated exactly once per epoch, over however many starts
        epochs = [m.step for m in client.get_metric_history(run.info.run_id, "val_perplexity")]
        assert len(set(epochs)) == 2 and (trial not in done_before or len(epochs) == 2)
    assert client.get_run(plan.parent_run_id).info.status == "FINISHED"
    assert (folder / "report.html").is_file()
