"""PAR Transformer's method: its design rules and its Gumbel-softmax supernet search."""

from .rules import par_design_rules
from .search import ParSearchResult, ParSupernet, gumbel_par_search

__all__ = ["ParSearchResult", "ParSupernet", "gumbel_par_search", "par_design_rules"]
