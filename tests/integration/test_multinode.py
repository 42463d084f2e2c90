"""A two-node Ray cluster on this machine runs the same launch, one worker per node."""

from __future__ import annotations

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from orchestrator.launch import launch
from tests.small_runs import small_config


@pytest.fixture
def two_node_cluster():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_launch_places_one_worker_on_each_node(two_node_cluster, markov_dataset, tmp_path):
    config = small_config(markov_dataset, tmp_path, "train.max_epochs=1",
                          f"ray.address={two_node_cluster.address}")
    result = launch(config)
    run = MlflowClient(result.tracking_uri).get_run(result.run_id)
    nodes = run.data.tags["ray.worker_nodes"].split(",")
    assert len(nodes) == 2 and len(set(nodes)) == 2
    assert {node["NodeID"] for node in ray.nodes() if node["Alive"]} == set(nodes)
    assert run.info.status == "FINISHED"
