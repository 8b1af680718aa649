"""The take-home's experiment entry points, kept as thin wrappers over homevision.training."""
