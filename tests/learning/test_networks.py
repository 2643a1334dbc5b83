import torch

from learning.features import NEIGHBOUR_FEATURES, OWN_FEATURES, STATE_FEATURES
from learning.mixer import QMixer, VDNMixer
from learning.networks import AgentCritic, ASNActor, MLPActor, gumbel_softmax_st


def test_actors_serve_any_library_size_and_respect_masks():
    torch.manual_seed(0)
    degree = 3
    width = OWN_FEATURES + degree * NEIGHBOUR_FEATURES
    for actor in (ASNActor(degree, 16), MLPActor(degree, 16)):
        for n_pbs in (5, 40):
            obs = torch.randn(2, 4, n_pbs, width)
            mask = torch.ones(2, 4, n_pbs, 2 + degree)
            mask[..., 3:] = 0  # only the first neighbour exists
            logits = actor(obs, mask)
            assert logits.shape == (2, 4, n_pbs, 2 + degree)
            assert (logits.argmax(-1) < 3).all()


def test_asn_pull_scores_follow_the_neighbour():
    """Swapping two neighbours' features swaps their pull logits (shared pair weights)."""
    torch.manual_seed(1)
    actor = ASNActor(2, 16)
    obs = torch.randn(3, OWN_FEATURES + 2 * NEIGHBOUR_FEATURES)
    swapped = obs.clone()
    a, b = OWN_FEATURES, OWN_FEATURES + NEIGHBOUR_FEATURES
    swapped[:, a:b], swapped[:, b:] = obs[:, b:], obs[:, a:b]
    mask = torch.ones(3, 4)
    out, out_sw = actor(obs, mask), actor(swapped, mask)
    assert torch.allclose(out[:, :2], out_sw[:, :2])
    assert torch.allclose(out[:, 2], out_sw[:, 3]) and torch.allclose(out[:, 3], out_sw[:, 2])


def test_qmix_is_monotonic_and_vdn_sums():
    torch.manual_seed(2)
    mixer = QMixer(4, STATE_FEATURES, 8)
    q = torch.randn(16, 4, requires_grad=True)
    state = torch.randn(16, 7, STATE_FEATURES)
    mixer(q, state).sum().backward()
    assert (q.grad >= 0).all()
    assert torch.allclose(VDNMixer()(q, state), q.sum(-1))


def test_critic_and_straight_through_gumbel():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 6, 5, requires_grad=True)
    sample = gumbel_softmax_st(logits, gen)
    assert torch.equal(sample.sum(-1), torch.ones(2, 4, 6)) and set(sample.unique().tolist()) <= {0.0, 1.0}
    critic = AgentCritic(OWN_FEATURES + 3 * NEIGHBOUR_FEATURES, 5, 16)
    q = critic(torch.randn(2, 4, 6, OWN_FEATURES + 3 * NEIGHBOUR_FEATURES), sample)
    assert q.shape == (2, 4)
    q.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_attention_critic_credit_does_not_shrink_with_the_catalogue():
    """A PB's action moves Q_n as much with 40 PBs as with 4 (summed utilities); the mean critic
    dilutes it by 1/J. Node attention: another EN's action on the same PB changes Q_n."""
    from learning.networks import make_critic

    torch.manual_seed(0)
    width, actions = OWN_FEATURES + 2 * NEIGHBOUR_FEATURES, 4

    def credit(kind: str, n_pbs: int) -> float:
        torch.manual_seed(1)
        critic = make_critic(kind, width, actions, 16)
        obs = torch.randn(1, 3, 1, width).expand(1, 3, n_pbs, width).contiguous()
        act = torch.zeros(1, 3, n_pbs, actions, requires_grad=True)
        critic(obs, act)[0, 0].backward()
        return float(act.grad[0, 0, 0].abs().sum())

    for kind in ("attention", "sum"):
        assert credit(kind, 40) > 0.5 * credit(kind, 4)
    assert credit("mean", 40) < 0.2 * credit("mean", 4)
    critic = make_critic("attention", width, actions, 16)
    obs = torch.randn(1, 3, 5, width)
    act = torch.zeros(1, 3, 5, actions, requires_grad=True)
    critic(obs, act)[0, 0].backward()
    assert act.grad[0, 1, 2].abs().sum() > 0  # EN 1's action on PB 2 reaches EN 0's utility
