"""dbload: PostgreSQL workloads run sequentially, in threads and with asyncio."""

__version__ = "0.1.0"
