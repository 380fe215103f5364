"""Lightning callbacks of a run: checkpointing, progress bar, views for any logger and ``run_info.json``."""
