"""Full-split validation in the background (`train.background_validation`): what the
launching driver needs, importing neither torch nor Lightning (the scoring itself, and the
workers' side, are in `worker.background_scores`).

Decoding the whole validation split inside every epoch would stall training, so by default
an epoch greedy-decodes only `eval.val_bleu_batches` batches. With this on, Ray Train
validates each epoch's checkpoint asynchronously (its ValidationConfig): a Ray task scores
the checkpoint on every validation batch, and Ray merges the score into the checkpoint's
metrics, so that score ranks the checkpoints while training goes on, and logs it to the
run at the checkpoint's step.

The task asks for one unit of the Ray resource VALIDATION_RESOURCE and no CPU: the node
that offers it runs the scoring (a local instance offers it; on a cluster, one node's
`ray start --resources`), one checkpoint at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.config import ExperimentConfig
from orchestrator.errors import OrchestratorError

VALIDATION_RESOURCE = "background_validation"


def validation_config(tracking_uri: str, run_id: str,
                      credentials: dict[str, str]) -> Any:
    """The ray.train.ValidationConfig a launch with train.background_validation hands
    Ray Train."""
    import ray.train

    return ray.train.ValidationConfig(
        fn=ScoreOnFullSplit(tracking_uri, run_id, credentials),
        ray_remote_kwargs={"num_cpus": 0, "resources": {VALIDATION_RESOURCE: 1}})


@dataclass(frozen=True)
class ScoreOnFullSplit:
    """What Ray Train calls with each checkpoint: its score on the whole validation split,
    logged to the run at the checkpoint's step as soon as it is known. Ray pickles it by
    module and name, so the Train controller that unpickles it imports only this module.
    The credentials travel like the workers' (launch._credentials_for_workers), never in
    what Ray writes to storage (a report's validation arguments are)."""

    tracking_uri: str
    run_id: str
    credentials: dict[str, str] = field(repr=False)

    def __call__(self, checkpoint: Any) -> dict[str, float]:
        from orchestrator.worker.background_scores import score_checkpoint

        return score_checkpoint(checkpoint, self.tracking_uri, self.run_id, self.credentials)


def check_scoring_node(config: ExperimentConfig) -> None:
    """Before the run starts: a cluster where no node offers VALIDATION_RESOURCE would
    leave every score pending, and the workers waiting for them at the end."""
    import ray

    if config.train.background_validation and \
            ray.cluster_resources().get(VALIDATION_RESOURCE, 0) < 1:
        raise OrchestratorError(
            f"train.background_validation=true needs a Ray node offering the resource "
            f"{VALIDATION_RESOURCE!r}, and ray.address={config.ray.address} has none; start "
            f"one node with `ray start --resources '{{\"{VALIDATION_RESOURCE}\": 1}}'` or set "
            "train.background_validation=false")
