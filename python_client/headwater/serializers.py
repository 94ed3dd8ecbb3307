"""The public serializers module, mirroring ``prefect.serializers``.

``from prefect.serializers import JSONSerializer`` ports by changing the import, and so do the
names ``result_serializer`` takes: ``"pickle"`` (cloudpickle, as Prefect's),
``"json"``, ``"compressed/pickle"`` and ``"compressed/json"``. Headwater also names
``"cloudpickle"``, the default.
"""

from headwater._serializers import (
    CloudPickleSerializer,
    CompressedJSONSerializer,
    CompressedPickleSerializer,
    CompressedSerializer,
    JSONSerializer,
    PickleSerializer,
    Serializer,
)

__all__ = [
    "CloudPickleSerializer",
    "CompressedJSONSerializer",
    "CompressedPickleSerializer",
    "CompressedSerializer",
    "JSONSerializer",
    "PickleSerializer",
    "Serializer",
]
