"""Lightning callbacks of a run: checkpointing, progress bar, TensorBoard views and ``run_info.json``."""
