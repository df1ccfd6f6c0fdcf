"""The stages of an audit run (see audit/runner.py): prepare, encode, score, generate, compare,
explain, attention, write. Each takes and returns the typed results of audit/stages/state.py."""
