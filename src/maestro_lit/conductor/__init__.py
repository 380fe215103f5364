"""Scalarisers: the Conductor and the fixed-weight baselines, its outer loop (meta-reward and updates), the trusted
and joint variants, and their metrics."""
