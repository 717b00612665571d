"""The demo: a collector and two book shops showing recommendations, for ``clickthru demo``."""
