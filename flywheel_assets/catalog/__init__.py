"""The catalog: every Delta table once, with what one row is, its key, whether it holds personal
data, its rollback rule and its preview columns. It sits below the stages and imports none."""

from .entry import CatalogTable, Refuse, Restore
from .tables import BY_NAME, TABLES, UnknownTable, table, tables_of

__all__ = [
    "BY_NAME",
    "TABLES",
    "CatalogTable",
    "Refuse",
    "Restore",
    "UnknownTable",
    "table",
    "tables_of",
]
