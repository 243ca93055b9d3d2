"""The output tables of a compute run, shaped alike by every engine (a neutral place).

`result.ComputeResult` holds a run's tables; `memberships` turns a level frame's audience columns
into membership rows; `native` types trait columns (SPEC section 5a). The Polars engine and the
SQL backends both call these, so that every engine writes the same tables and dtypes.
"""
