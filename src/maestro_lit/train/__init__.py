"""The training step: the LightningModule, the inner policy update, step metrics, the typed records between parts
and checkpoint state."""
