"""A user's package with plain PyTorch LSTM classifiers, audited with ``--model tests.lstm_package.models:...``."""
