"""SpeedLimit's method: int8 latency measurement and evolution under an upper latency bound."""

from .search import SpeedLimitConfig, int8_latency, int8_measure_fn, measure_table, speedlimit_search

__all__ = ["SpeedLimitConfig", "int8_latency", "int8_measure_fn", "measure_table", "speedlimit_search"]
