"""--cluster: load generated on a Dask cluster, reported as one run.

The coordinator (coordinator.py, in dbload's process) splits the clients
among Dask workers and ships each its share (job.py); each Dask worker runs
the async executor over it (task.py), released at one instant, and streams
a delta per interval back through Dask's events, which the coordinator
merges into the run's recorder as processes mode merges its children's.
"""
