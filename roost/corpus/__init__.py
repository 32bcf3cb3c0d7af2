"""The corpus stage: read posts as platforms export them, clean, deduplicate, scrub, thread.

Python API: ``ingest(sources, workspace, config) -> IngestReport``. Later stages
read the artifact through :mod:`roost.corpus.schema` only.
"""

from roost.corpus.config import ColumnMap, IngestConfig, load_config
from roost.corpus.ingest import IngestReport, ingest

__all__ = ["ColumnMap", "IngestConfig", "IngestReport", "ingest", "load_config"]
