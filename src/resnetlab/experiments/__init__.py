"""Named experiments with reports: the degradation experiment (plain vs residual nets)."""
