"""Training: snapshot, LoRA retrain, evaluation, the gate and the model registry."""
