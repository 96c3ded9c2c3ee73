"""sesmail: the shared layer of the send, batch and webhook SCF functions for Tencent Cloud SES.

Modules are imported by the functions that need them; this package imports nothing at load time
so that a function pays only for what its invocation uses (cold start: docs/benchmarks.md#how-each-figure-is-measured).
"""

__version__ = "0.1.0"
