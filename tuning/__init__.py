"""Search spaces, schedulers, the sweep runner and sweep reports (see the sweeps issue)."""
