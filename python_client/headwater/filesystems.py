"""The public file-systems module, mirroring ``prefect.filesystems``: result storage.

``result_storage=LocalFileSystem(basepath="~/results")`` ports by changing the import. Any
object with ``write_path(path, content)`` and ``read_path(path)`` is result storage too.
"""

from headwater._results import LocalFileSystem

__all__ = ["LocalFileSystem"]
