"""Values the planner's modules pass each other: eligible counts per category (from SQL) and
the context a sampling strategy may know. Shared by pool (which builds them) and sampling
(which draws from them)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CategoryCounts:
    category_id: np.ndarray       # int32, ascending
    n: np.ndarray                 # eligible segments per category
    sub_counts: list[np.ndarray]  # per category: segments per subcategory, in rank order


@dataclass(frozen=True)
class Context:
    """What a strategy may know besides the counts, aligned with CategoryCounts."""
    category_id: np.ndarray
    ap: np.ndarray | None = None         # feedback AP per category, NaN where the feedback has none
    frequency: np.ndarray | None = None  # LVIS frequency bucket per category: 'rare', 'common', 'frequent'
