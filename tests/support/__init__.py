"""Shared test plumbing: one place for each helper the suites use.

- `files`: the repository root and small file helpers (write, mtimes, log and dead-letter reads).
- `s3`: moto servers and uploading a drop to them.
- `tap`: running tap-mparticle in-process or as its console script, catalogs, the generators.
- `target`: running target-mparticle in-process and building its Singer input.
- `eventsapi`: the local Events API stand-in.
- `cases`: generators of the small bad inputs the hardening suite keeps.
- `meltano`: running the real `meltano` CLI on a copy of this project.
- `proxy`: a counting reverse proxy in front of moto (requests counted on the wire).

The fixtures built on these live in tests/conftest.py.
"""
