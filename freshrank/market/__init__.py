"""Generated market: a drifting simulated shop that writes daily search-log spans.

Public API::

    from freshrank.market import Market, Search, simulate, write_span, SPAN_COLUMNS, DEFAULT_PAGE_SIZE
"""

from .market import DEFAULT_MARKET_START, DEFAULT_PAGE_SIZE, Intent, Market, Search
from .simulate import simulate
from .spans import SPAN_COLUMNS, SUCCESS_MARKER, is_complete, span_dir, write_span
from .vocab import CATEGORY_NAMES

__all__ = [
    "CATEGORY_NAMES",
    "DEFAULT_MARKET_START",
    "DEFAULT_PAGE_SIZE",
    "Intent",
    "Market",
    "SPAN_COLUMNS",
    "SUCCESS_MARKER",
    "Search",
    "is_complete",
    "simulate",
    "span_dir",
    "write_span",
]
