"""Effects and findings: the statistics (stats.py), the metric catalogue (catalogue.py), the family
test and its options (family.py), and one module per probe kind or metric group.

Import the modules themselves (``from audit.metrics.paired import build_findings``): this package
imports nothing, so ``audit.metrics.catalogue`` stays light enough for the dashboard.
"""
