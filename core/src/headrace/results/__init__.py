"""Results: where a run's return value is persisted, how it is serialized, and how a state points at it.

* :mod:`~headrace.results.storage` — a storage URL (``file://…``, ``memory://…``, or any protocol a
  ``headrace_storage_backends`` plugin serves) or a storage block resolved to an fsspec filesystem.
* :mod:`~headrace.results.serializers` — ``pickle`` (cloudpickle), ``json`` and their ``compressed/`` forms.
* :mod:`~headrace.results.store` — the stored record (header + payload), the store, and the
  :class:`ResultReference` that goes into ``state.data`` instead of the value.
"""

from __future__ import annotations

from headrace.results.serializers import (
    CompressedSerializer,
    JSONSerializer,
    PickleSerializer,
    Serializer,
    get_serializer,
)
from headrace.results.storage import (
    ResultStorage,
    StorageBlock,
    UnknownStorageProtocol,
    as_result_storage,
    resolve_storage,
    split_protocol,
)
from headrace.results.store import RESULT_KIND, ResultRecord, ResultReference, ResultStore

__all__ = [
    "RESULT_KIND",
    "CompressedSerializer",
    "JSONSerializer",
    "PickleSerializer",
    "ResultRecord",
    "ResultReference",
    "ResultStorage",
    "ResultStore",
    "Serializer",
    "StorageBlock",
    "UnknownStorageProtocol",
    "as_result_storage",
    "get_serializer",
    "resolve_storage",
    "split_protocol",
]
