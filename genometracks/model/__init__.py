"""Segment-recurrent Transformer-XL with q/k/v convolutions (relative.py → attention.py → transformer.py)."""

from genometracks.model.attention import LayerMemory, RelativeAttention
from genometracks.model.transformer import Memory, ModelInputError, TransformerXL

__all__ = ["LayerMemory", "Memory", "ModelInputError", "RelativeAttention", "TransformerXL"]
