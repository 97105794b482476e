"""The common and utility layers; importing this module registers them.

InnerProduct, Embed and Parameter live in common_dense; blob plumbing (Split,
Silence, Flatten, Reshape, Concat, Slice, Tile, Filter, BatchReindex) in
common_shape; arithmetic (Eltwise, Scale, Bias, Reduction, ArgMax, MVN) in
common_arith.
"""

from engine.nn import common_arith, common_dense, common_shape  # noqa: F401
