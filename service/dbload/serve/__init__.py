"""``dbload serve`` and ``dbload run --dashboard``: runs started, watched and
kept from a browser or over HTTP.

The flow is the CLI's: a request becomes :mod:`dbload.api` calls
(``request``), a run's Observer turns what the recorder and the server
show each second into snapshots (``live``), the run queue keeps one run at
a time per target (``runs``) and saves each result as its ``--json`` file
(``store``); ``app`` is the HTTP face of all that and ``server`` runs it
under uvicorn. Nothing here measures or reports on its own.
"""
