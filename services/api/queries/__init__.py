"""Read-side queries: SQL over the projections' views (``rm_<table>``), one module per resource.

Every query takes the filters of a ``ListQuery`` through ``listing.sql_conditions`` with a fixed,
trusted mapping of filter field -> column; ids arrive already validated as UUID strings.
"""
