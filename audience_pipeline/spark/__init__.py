"""`compute --engine spark`: the whole computation on a Spark cluster (see `spark.compute`)."""

from __future__ import annotations
