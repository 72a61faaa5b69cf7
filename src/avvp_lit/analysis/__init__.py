"""Reading finished runs and sweeps: the ablation report's statistics and the run views
the notebooks show."""
