"""rpnt.model.dropout: the drop rate, unbiasedness, reproducibility, and eval identity."""

import pytest
import torch

from rpnt.model import ctx_attn
from rpnt.model.dropout import Dropout, keep_mask, keep_threshold


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
def test_drop_rate_and_expectation(p):
    torch.manual_seed(0)
    n = 1_000_000
    mask = keep_mask((n,), p, torch.float32, torch.device("cpu"))
    dropped = float((mask == 0).float().mean())
    # binomial standard error at n = 1e6 is <= 5e-4; 4 of them, plus the 1/65536 rounding
    assert abs(dropped - p) < 4 * (p * (1 - p) / n) ** 0.5 + 1 / 65536
    assert abs(float(mask.mean()) - 1.0) < 5e-3  # kept entries rescaled: E[mask] = 1
    kept = mask[mask > 0]
    assert torch.all(kept == kept[0])
    _, scale = keep_threshold(p)
    assert float(kept[0]) == pytest.approx(scale)


def test_lanes_are_independent():
    # neighbouring elements share a 64-bit draw: their drops must still be independent
    torch.manual_seed(1)
    m = keep_mask((500_000, 4), 0.5, torch.float32, torch.device("cpu")) > 0
    both = float((m[:, 0] & m[:, 1]).float().mean())
    assert both == pytest.approx(0.25, abs=4e-3)
    assert float(m[:, 3].float().mean()) == pytest.approx(0.5, abs=4e-3)


def test_seeded_masks_repeat_and_eval_is_identity():
    drop = Dropout(0.2)
    x = torch.randn(8, 50, 32)
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    b = drop(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, x)
    drop.eval()
    assert drop(x) is x
    assert Dropout(0.0).train()(x) is x
    with pytest.raises(ValueError):
        Dropout(1.0)


def test_gradient_is_the_mask():
    x = torch.randn(4, 10, requires_grad=True)
    torch.manual_seed(5)
    y = Dropout(0.3)(x)
    y.sum().backward()
    torch.manual_seed(5)
    mask = keep_mask((4, 10), 0.3, torch.float32, torch.device("cpu"))
    assert torch.equal(x.grad, mask)


def test_context_attention_masks_match_the_threshold_rule():
    gen = torch.Generator().manual_seed(7)
    buf = torch.empty(64, 50, 50)
    keep = ctx_attn._dropout_keep((64, 50, 50), 0.1, gen, buf)
    assert float((keep == 0).float().mean()) == pytest.approx(0.1, abs=6e-3)
    gen2 = torch.Generator().manual_seed(7)
    again = ctx_attn._dropout_keep((64, 50, 50), 0.1, gen2, torch.empty(64, 50, 50))
    assert torch.equal(keep, again)
