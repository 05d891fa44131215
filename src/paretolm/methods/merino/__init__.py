"""MeRino's method: entropy-maximising evolution under a FLOPs / parameter budget."""

from .search import MerinoConfig, SearchResult, merino_search, random_search

__all__ = ["MerinoConfig", "SearchResult", "merino_search", "random_search"]
