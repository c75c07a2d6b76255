"""The authors' model and loop (benchmarks/reference_code.py) run, at a tiny size.

Needs an extracted checkout of github Littleor/Personalized-DMER named by
``$PDMER_REFERENCE_CODE``::

    git clone https://github.com/Littleor/Personalized-DMER /tmp/pdmer-reference-git
    mkdir -p /tmp/pdmer-reference
    git -C /tmp/pdmer-reference-git archive HEAD models utils | tar -x -C /tmp/pdmer-reference
    PDMER_REFERENCE_CODE=/tmp/pdmer-reference pytest tests/meta/test_reference_code.py
"""

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import reference_code  # noqa: E402

ROOT = reference_code.default_root()
pytestmark = pytest.mark.skipif(
    ROOT is None, reason=f"${reference_code.ENV} does not name an extracted checkout of "
                         "github Littleor/Personalized-DMER (git archive HEAD models utils)")


@pytest.fixture(scope="module")
def ref():
    return reference_code.ReferenceCode(ROOT)


def encoders(module):
    """The three names under which PDMERModel holds its one transformer encoder."""
    outer = module.multi_scale_attention
    return (outer.encoder, outer.multi_scale_attention.local_attention,
            outer.multi_scale_attention.global_attention)


def test_task_gives_a_finite_loss_and_a_gradient_for_every_parameter(ref):
    net = ref.model("tiny")
    maml = ref.maml(net)
    support = ref.batch(1, "tiny", seed=1, n_frames=8)
    query = ref.batch(2, "tiny", seed=2, n_frames=8)
    loss = ref.task(maml, support, query, ref.args("tiny", steps=2))
    assert math.isfinite(loss)
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    assert len(params) > 20
    for name, p in params:
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert sum(p.grad.abs().sum() for _, p in params) > 0


def test_personalization_adapts_a_clone_and_keeps_the_encoder_shared(ref):
    net = ref.model("tiny")
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    song = ref.batch(1, "tiny", seed=3, n_frames=8)
    learner = ref.personalize(ref.maml(net), song, ref.args("tiny", steps=2))
    for name, p in net.named_parameters():  # the meta-parameters are untouched
        torch.testing.assert_close(p.detach(), before[name], rtol=0, atol=0)
    weight = [e.encoder.layer[0].attention.attention.query.weight for e in encoders(learner.module)]
    assert weight[0] is weight[1] is weight[2]  # learn2learn's memo: one encoder
    assert not torch.equal(weight[0].detach(), encoders(net)[0].encoder.layer[0]
                           .attention.attention.query.weight.detach())
    features, _ = song
    out = learner(features, output_attentions=True)["model_output"]
    assert all(o.shape == (1, 8) and torch.isfinite(o).all() for o in out)
