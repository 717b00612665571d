"""The dashboard and the reports API, served by the collector beside its public endpoints.

- ``auth``: who is asking (a session cookie or a read-only API key) and what they may see.
- ``api``: ``/api/v1/...``: reports as JSON or CSV, raw events as CSV or NDJSON.
- ``pages``, ``charts``, ``templates/``: the HTML dashboard, charts drawn as SVG on the server.
- ``app``: the routes, mounted by the collector.
"""
