"""The RPNT model: site tokens, MRoPE, strictly causal context attention, multi-site
encoder, self-supervised objectives and the velocity head.

    from rpnt.model import RPNTConfig, RPNT
    model = RPNT(RPNTConfig.preset("small", n_units=50, window=50))
"""

from rpnt.model.config import RPNTConfig
from rpnt.model.encoder import EncoderOutput
from rpnt.model.rpnt import RPNT

__all__ = ["RPNT", "EncoderOutput", "RPNTConfig"]
