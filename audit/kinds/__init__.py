"""Probe kinds as plug-ins: one module per kind (counterfactual, parallel, long_document,
multiple_choice), each a ``Kind`` (audit/kinds/base.py) listed in audit/kinds/registry.py."""
