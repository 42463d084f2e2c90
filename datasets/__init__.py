"""Shard writers, WebDataset streaming readers and DataModules, tokenizers, sample tasks.

Never imports `orchestrator` or `tuning`; the batch contract in `batches.py` is the only
thing `lightning_modules` needs from here.
"""
