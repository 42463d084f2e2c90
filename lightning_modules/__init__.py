"""One LightningModule per task, and the shared nn blocks they are built from.

Never imports `orchestrator` or `tuning`; reads batches through
`orchestrator.datasets.batches` only.
"""
