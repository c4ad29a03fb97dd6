"""Recommender models: thin classes that validate, convert, call kernels and wrap results.

Each model module may import the kernel room (through ``dispatch.kernels``),
:mod:`fastals.similarity`, the validation, array and threading helpers and the other model
modules below it (``base`` < ``factorization`` < ``blocksolve`` < the models); never a room
above (ids, evaluation, spark, the CLI).
"""
