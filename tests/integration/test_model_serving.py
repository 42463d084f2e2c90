"""`mlflow models serve` of the registered translation model answers a real HTTP request
on loopback with the translation that `orchestrator translate` gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from orchestrator.cli import main
from tests.registered_models import EXPERIMENT, dates_checkpoint, dates_config, logged_run
from tests.servers import free_port, stop_process_group, wait_for_http


def invoke(url: str, request: dict) -> dict:
    """POST a JSON scoring request to the server's /invocations."""
    body = json.dumps(request).encode()
    sent = urllib.request.Request(f"{url}/invocations", data=body, method="POST",
                                  headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(sent, timeout=60) as answer:
        return json.loads(answer.read())


def test_mlflow_models_serve_translates_a_sentence_from_the_registered_model(
        tmp_path, tmp_path_factory, capsys):
    checkpoint, pairs = dates_checkpoint(tmp_path_factory)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logged_run(uri, dates_config(checkpoint.parent / "shards"), checkpoint, {"val_bleu": 80.0})
    sources = [source for source, _ in pairs[:20]]
    (tmp_path / "source.txt").write_text("\n".join(sources) + "\n")
    capsys.readouterr()
    assert main(["translate", str(checkpoint), "--beam-size", "3",
                 "--input", str(tmp_path / "source.txt")]) == 0
    expected = capsys.readouterr().out.splitlines()
    # a sentence the model gets right, so the answer is a real translation
    sentence, translation = next((source, target) for (source, target), output
                                 in zip(pairs, expected, strict=False) if output == target)

    port = free_port()
    environment = {**os.environ, "MLFLOW_TRACKING_URI": uri,
                   # `--env-manager local` runs uvicorn from this environment's bin folder
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with open(tmp_path / "serve.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m",
             f"models:/{EXPERIMENT}@best", "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path, env=environment, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/ping", server)
        answer = invoke(url, {"dataframe_split": {"columns": ["text"], "data": [[sentence]]},
                              "params": {"beam_size": 3}})
        assert answer == {"predictions": [translation]}, (tmp_path / "serve.log").read_text()
        batch = invoke(url, {"inputs": {"text": sources}, "params": {"beam_size": 3}})
        assert batch["predictions"] == expected
    finally:
        stop_process_group(server)
