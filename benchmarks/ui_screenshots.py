"""Screenshots of what a person sees in the MLflow UI for a run, with headless Chromium.

    python -m benchmarks.ui_screenshots --store /path/mlflow.db --experiment NAME --out DIR

Starts `orchestrator ui` on the store, takes the experiment's newest run (or --run ID) and
writes PNGs of its runs table, overview, model metrics, system metrics and the artifacts
named with --artifact (an HTML page opens in MLflow's own viewer). Look at them before
calling a page done; docs/screenshots/ keeps the ones committed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from orchestrator.cli.ui import MODEL_TRAINING_VIEW
from tests.servers import free_port, stop_process_group, wait_for_http


def screenshot(url: str, out: Path, size: tuple[int, int] = (1400, 1000),
               wait_s: float = 12.0) -> None:
    """Chromium's --screenshot fires on its virtual clock, before MLflow's charts have
    fetched their data; so the page loads on the real clock and the picture is taken over
    the DevTools protocol after `wait_s`."""
    port = free_port()
    browser = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--remote-debugging-port={port}", f"--window-size={size[0]},{size[1]}",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/json/version", browser)
        out.write_bytes(asyncio.run(_capture(port, url, size, wait_s)))
    finally:
        stop_process_group(browser)
    print(f"{out}  <- {url}")


async def _capture(port: int, url: str, size: tuple[int, int], wait_s: float) -> bytes:
    import aiohttp  # Ray's dependency; its websocket client speaks DevTools

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
            page = next(item for item in await response.json() if item["type"] == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as socket:
            await socket.send_json({"id": 1, "method": "Page.navigate", "params": {"url": url}})
            await asyncio.sleep(wait_s)
            await socket.send_json({"id": 2, "method": "Page.captureScreenshot",
                                    "params": {"format": "png"}})
            async for message in socket:
                reply = message.json()
                if reply.get("id") == 2:
                    return base64.b64decode(reply["result"]["data"])
    raise RuntimeError(f"no screenshot of {url}")


def pages(base: str, experiment_id: str, run_id: str, artifacts: list[str]) -> dict[str, str]:
    """Page name -> URL, each in the model-training view (`orchestrator ui` prints that)."""
    view = MODEL_TRAINING_VIEW
    run = f"{base}/#/experiments/{experiment_id}/runs/{run_id}"
    found = {
        "runs_table": f"{base}/#/experiments/{experiment_id}/runs{view}",
        "run_overview": run + view,
        "model_metrics": f"{run}/model-metrics{view}",
        "system_metrics": f"{run}/system-metrics{view}",
    }
    for path in artifacts:
        found["artifact_" + Path(path).stem] = f"{run}/artifacts/{path}{view}"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="the sqlite mlflow.db")
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--run", help="a run id (default: the experiment's newest run)")
    parser.add_argument("--artifact", action="append", default=[])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    uri = f"sqlite:///{args.store.resolve()}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(args.experiment)
    run_id = args.run or client.search_runs([experiment.experiment_id], max_results=1,
                                            order_by=["attributes.start_time DESC"])[0].info.run_id
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "ui", "--port", str(port),
         f"tracking.uri={uri}", f"tracking.experiment={args.experiment}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", server)
        for name, url in pages(base, experiment.experiment_id, run_id, args.artifact).items():
            screenshot(url, args.out / f"{name}.png")
    finally:
        stop_process_group(server)


if __name__ == "__main__":
    main()
