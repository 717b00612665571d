"""The collector: the HTTP service that takes events in and acknowledges them once stored."""
