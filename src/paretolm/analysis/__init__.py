"""Analyses of peers' published ground truth: nothing here is trained or measured by paretolm.

* ``lts_archai``: readers for the LiteTransformerSearch experiment logs (trained architectures,
  their perplexities, parameter counts, latency and memory);
* ``lts_logs``: every analytic proxy recomputed on LTS's trained architectures and rank-correlated
  with LTS's perplexities (``paretolm analyze lts-logs``);
* ``nas_bench_bert``: shape-only proxies on the 500 NAS-Bench-BERT encoders, correlated with GLUE
  next to the published proxy scores (``paretolm proxy nas-bench-bert``).
"""
