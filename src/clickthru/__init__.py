"""clickthru: click-through tracking for recommendation services.

No click lost, no visitor delayed: the browser keeps each event until a collector has
durably acknowledged it, and ids make every retry harmless.
"""

__version__ = "0.1.0"
