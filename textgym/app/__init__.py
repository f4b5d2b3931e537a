"""The application layer: CLI, run configs, the training pipeline, run folders, reports."""
