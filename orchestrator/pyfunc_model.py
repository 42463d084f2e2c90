"""The registered model's code: an MLflow pyfunc around an orchestrator checkpoint.

MLflow logs this file itself ("models from code"), not a pickled object, so loading the
model runs this code and reads the checkpoint as data: weights-only, through the same
loader as `orchestrator eval` and the inference commands (`run_files.read_checkpoint`).
The checkpoint alone carries the weights, the vocabulary and the experiment config.

Inputs are a table with one column, named per task in `registered_model.SERVING`:
`prompt` (language_model), `text` (sentiment, translation), `image` or `video` (the
encoded file's bytes; base64 in a JSON request). Outputs are one string per row: the
generated text, the label, the translation, the caption or a clip's frame labels (one per
sampled frame, space-separated).

Nothing heavy is imported at module level: MLflow runs this file once in the training
driver when it logs the model, and that process never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.models
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

BATCH = 64  # rows decoded at once: a long request does not hold every row in memory


class CheckpointModel(PythonModel):
    """The task module of the logged checkpoint, answering `predict` like the CLI."""

    def load_context(self, context: PythonModelContext) -> None:
        """Build the module from the checkpoint artifact, weights-only; a file holding
        anything more is refused (OrchestratorError) before any of it runs."""
        import torch

        from orchestrator.registered_model import SERVING
        from orchestrator.worker.tasks import TASKS, load_task_module

        checkpoint = Path(context.artifacts["checkpoint"])
        self.module = load_task_module(checkpoint, list(TASKS))
        if torch.cuda.is_available():
            self.module = self.module.cuda()
        self.task = _task_of(self.module)
        self.serving = SERVING[self.task]

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> list[str]:
        """One output string per input row; `params` as the matching CLI flags."""
        settings = {**self.serving.params, **(params or {})}
        values = _rows(model_input, self.serving.column)
        outputs: list[str] = []
        for start in range(0, len(values), BATCH):
            outputs += self._predict_batch(values[start : start + BATCH], settings)
        return outputs

    def _predict_batch(self, values: list[Any], settings: dict[str, Any]) -> list[str]:
        module = self.module
        if self.task == "translation":
            return module.translate([str(value).strip() for value in values],
                                    int(settings["beam_size"]))
        if self.task == "sentiment":
            return module.classify([str(value) for value in values])
        if self.task == "language_model":
            return [module.generate_text(str(value), int(settings["length"]),
                                         float(settings["temperature"]), seed=int(settings["seed"]))
                    for value in values]
        pixels = _media_batch(values, module.media).to(module.device)
        if self.task == "video_frame_classification":
            return [" ".join(labels) for labels in module.label_frames(pixels)]
        return module.caption(pixels, int(settings["beam_size"]))


def _rows(model_input: Any, column: str) -> list[Any]:
    """The request's values, one a row. A dict of lists given to `predict` in Python
    arrives as one row holding the list (MLflow keeps it as given): its items are rows."""
    cells = model_input[column] if isinstance(model_input, pd.DataFrame) else model_input
    rows: list[Any] = []
    for cell in cells:
        if isinstance(cell, list | tuple | np.ndarray):
            rows += list(cell)
        else:
            rows.append(cell)
    return rows


def _task_of(module: Any) -> str:
    """The task name of a loaded module (its class is the registry's entry)."""
    from orchestrator.worker.tasks import TASKS

    return next(name for name, spec in TASKS.items() if type(module) is spec.module_class)


def _media_batch(values: list[Any], media: dict[str, Any]) -> Any:
    """Encoded images or clips (bytes) -> the batch tensor the model reads, prepared as
    in training and as `orchestrator caption` prepares files."""
    import torch

    from orchestrator.datasets.video_frames import media_tensor
    from orchestrator.errors import OrchestratorError

    tensors = []
    for row, value in enumerate(values):
        try:
            # a JSON request's base64 is decoded by MLflow (binary column)
            tensors.append(media_tensor(bytes(value), media))
        except Exception as exc:  # noqa: BLE001 - PIL and PyAV raise many kinds
            raise OrchestratorError(f"row {row} is not a readable {media['kind']} "
                                    f"({' '.join(str(exc).split())[:200]})") from None
    return torch.stack(tensors)


mlflow.models.set_model(CheckpointModel())
