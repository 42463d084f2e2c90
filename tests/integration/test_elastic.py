"""Elastic training on a two-node cluster: the second node is removed after the first
epoch's checkpoint and the run continues on one worker instead of waiting; the node comes
back and the run grows to two workers again. One MLflow run, every epoch trained and
logged once."""

from __future__ import annotations

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from orchestrator.worker.restarts import WORLD_SIZE_METRIC
from tests.integration.test_recovery import launch_in_thread, registered_checkpoints, wait_for
from tests.small_runs import small_config

EPOCHS, STEPS = 8, 100  # STEPS per rank at the full world of 2 workers; 6 epochs left
# after the node returns give Ray's resize time to happen before the run ends
LR = 0.005  # small_config's optim.lr


def look_at_the_cluster_now() -> None:
    """Ray Train's elastic policy learns what fits from Ray's autoscaling coordinator,
    which looks at the cluster every 20 s; asking it to look now means the run does not
    have to outlast that tick to show that it grows (how soon depends on Ray, not us)."""
    coordinator = ray.get_actor("AutoscalingCoordinator", namespace="AutoscalingCoordinator")
    ray.get(coordinator.get_reserved_resources.remote("test_elastic", recompute=True))


@pytest.fixture
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    second = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, second
    ray.shutdown()
    cluster.shutdown()


def test_a_lost_node_shrinks_the_run_and_a_returned_one_grows_it(
    two_nodes, markov_dataset, tmp_path
):
    cluster, second = two_nodes
    config = small_config(
        markov_dataset, tmp_path, f"ray.address={cluster.address}", "name=elastic",
        "ray.min_workers=1", "ray.num_workers=2", "ray.resize_check_s=1",
        "ray.checkpoints_to_keep=null",
        f"train.max_epochs={EPOCHS}", f"train.batches_per_epoch={STEPS}",
    )
    thread, outcome = launch_in_thread(config)
    runs = tmp_path / "runs"
    wait_for(lambda: registered_checkpoints(runs, "elastic") >= 1)
    cluster.remove_node(second)
    # one worker trains the next epoch, with no node to wait for
    wait_for(lambda: registered_checkpoints(runs, "elastic") >= 2 or not thread.is_alive(), 120)
    cluster.add_node(num_cpus=1)  # here: Cluster.add_node needs the main thread
    look_at_the_cluster_now()
    thread.join(timeout=300)

    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    client = MlflowClient(result.tracking_uri)
    assert client.get_run(result.run_id).info.status == "FINISHED"
    sizes = [m.value for m in client.get_metric_history(result.run_id, WORLD_SIZE_METRIC)]
    assert len(sizes) == EPOCHS  # every epoch trained and logged once
    assert sizes[0] == 2 and sizes[1] == 1
    assert sizes[-1] == 2  # grew back once the node returned
    # each epoch's validation once, at increasing steps: no epoch was trained twice
    val_steps = [m.step for m in client.get_metric_history(result.run_id, "val_perplexity")]
    assert len(val_steps) == EPOCHS and val_steps == sorted(set(val_steps))
    # an epoch is STEPS x 2 batches in all: a lone worker runs 2 x STEPS of them
    total = sum(STEPS * 2 // int(size) for size in sizes)
    assert val_steps[-1] == total - 1
    # every step once: the epoch the resize interrupted left nothing in MLflow
    steps = [m.step for m in client.get_metric_history(result.run_id, "train_loss")]
    assert sorted(steps) == list(range(total))
    rates = client.get_metric_history(result.run_id, "lr")
    assert [m.value for m in rates] == [LR * size / 2 for size in sizes]  # lr x world / 2
