"""The store: where acknowledged events live, and the roles that work on them.

- ``rows``: what is written (events, rejects) and what sites are;
- ``database``: the thin difference between SQLite and PostgreSQL every role is written
  over; ``sqlite`` (one writer thread per file, group commit) and ``postgres`` (the shared
  store) are the two;
- ``sink``: the event sink, what a ``2xx`` promises: on disk, once;
- ``aggregator`` and ``rollups``: the counters reports read, following the events;
- ``sites``: site administration, keys and salts;
- ``spool``: a collector's spool in front of a shared PostgreSQL, and its forwarder.

Reports (``clickthru.reports``) and access (``clickthru.access``) are roles over the same
databases; ``clickthru.backend`` chooses the databases and assembles the roles.
"""
