"""What runs inside a Ray Train worker: the entry point Ray pickles (`entry`), the
per-worker loop (`loop`), the project's Lightning callbacks and the task registry.

Nothing is imported here: a sweep's Train controller unpickles `entry.train_worker` and
must not pay for torch and Lightning."""
