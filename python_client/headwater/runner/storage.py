"""Code locations for `Flow.from_source`, named as Prefect's ``prefect.runner.storage``:
``from prefect.runner.storage import GitRepository`` ports by changing the import."""

from headwater._serve.source import GitRepository, LocalStorage

__all__ = ["GitRepository", "LocalStorage"]
