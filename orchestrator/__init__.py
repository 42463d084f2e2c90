"""rnn-orchestrator: train, sweep and compare recurrent sequence models on Ray and MLflow."""

__version__ = "0.1.0"
