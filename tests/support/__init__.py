"""What the tests build and share: tiny locally trained models of every task family (with and
without a planted bias), probe files, run folders written without a model (for the dashboard), the
golden audits, and the real CLI called in-process. Imported as ``tests.support.<module>``."""
