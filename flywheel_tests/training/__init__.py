"""Tests of the training stage: snapshots, LoRA training, the gate, the registry and retraining."""
