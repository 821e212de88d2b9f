"""Synthetic click-stream worlds with known fraud rings, for demos, tests and benchmarks.

``generate_shop`` writes the demo shop as Parquet; ``generate_marketplace`` writes a second,
independently shaped world as gzip JSON Lines + CSV to exercise ingestion;
``generate_travel`` a third, a travel agency, kept for checking that defaults generalise.
All write a ``truth.parquet`` that only evaluation may read.
"""

from catalog.synthetic.common import SyntheticPaths, SyntheticTables
from catalog.synthetic.marketplace import generate_marketplace, marketplace_tables
from catalog.synthetic.shop import generate_shop, shop_tables
from catalog.synthetic.travel import generate_travel, travel_tables

__all__ = [
    "SyntheticPaths",
    "SyntheticTables",
    "generate_marketplace",
    "generate_shop",
    "generate_travel",
    "marketplace_tables",
    "shop_tables",
    "travel_tables",
]
