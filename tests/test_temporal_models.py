"""G and C (paper §3): shapes, stepped == unrolled, GRU maths, and differentiability for GAP."""

from __future__ import annotations

import pytest
import torch

from svgan.models import TemporalCritic, TemporalCriticConfig, TemporalGenerator, TemporalGeneratorConfig
from svgan.models.temporal_generator import GRUCell

SMALL_G = TemporalGeneratorConfig(n_styles=6, style_dim=16, hidden_dim=24, t_mlp_width=32, h_mlp_width=32)


def test_gru_cell_matches_torch_gru_cell():
    torch.manual_seed(0)
    ours, reference = GRUCell(7, 5), torch.nn.GRUCell(7, 5)
    reference.load_state_dict(ours.state_dict())
    x, h = torch.randn(3, 7), torch.randn(3, 5)
    torch.testing.assert_close(ours(x, h), reference(x, h))


def test_stepped_generator_equals_unrolled():
    torch.manual_seed(0)
    generator = TemporalGenerator(SMALL_G)
    i, s = generator.sample_inputs(3, 40)
    unrolled, latents = generator.unroll(i, s)
    assert unrolled.shape == (3, 40, 6, 16) and latents.shape == (3, 40, 32)
    state, w = generator.init(i)
    stepped = [w]
    for k in range(39):
        state, w = generator.step(s[:, k], state)
        stepped.append(w)
    # The unroll steps the cells as a wavefront of batched matmuls and maps all steps' latents to W+ in one GEMM,
    # whose sums may be ordered differently from one step's (last-bit differences).
    torch.testing.assert_close(torch.stack(stepped, 1), unrolled, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(latents[:, 0], i, atol=0, rtol=0)  # l_0 = i
    assert len(state) == 4 and state[-1].shape == (3, 32) and state[0].shape == (3, 24)
    # a window that starts from a state reached earlier continues the same trajectory
    first, _, middle = generator.rollout(generator.init(i)[0], s[:, :20])
    rest, _, end = generator.rollout(middle, s[:, 20:])
    torch.testing.assert_close(torch.cat([first, rest], 1), unrolled[:, 1:], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(end[-1], state[-1], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(latents[:, -1], end[-1], atol=0, rtol=0)


@pytest.mark.parametrize("batch, steps", [(5, 25), (5, 1), (5, 2), (3, 4)])
def test_the_wavefront_rollout_is_the_cell_by_cell_recurrence(batch, steps):
    """P as a wavefront (cell j's step k at wave k + j, the cells' weights stacked and zero-padded to the widest)
    gives the latents, final state and GAP's second-order gradients of stepping each cell in turn, exactly in
    float64, also for windows shorter than the stack."""
    torch.manual_seed(0)
    generator = TemporalGenerator(SMALL_G).double()     # hidden 24 below a 32-d top cell: padding both ways
    i, s = (x.double().requires_grad_(True) for x in generator.sample_inputs(batch, steps + 1))

    def cell_by_cell(state, s):
        latents = []
        for k in range(s.shape[1]):
            state = generator.advance(s[:, k], state)
            latents.append(state[-1])
        return torch.stack(latents, 1), state

    results = []
    for rollout in (generator.rollout_latents, cell_by_cell):
        latents, state = rollout(generator.init(i)[0], s)
        grad_i, grad_s = torch.autograd.grad((latents[:, -1] - i).norm(dim=1).sum(), (i, s), create_graph=True)
        phi = torch.atan2(grad_s.flatten(1).norm(dim=1), grad_i.norm(dim=1)).sum()
        results.append([latents, *state, *torch.autograd.grad(phi, list(generator.P.parameters()))])
    for ours, reference in zip(*results):
        torch.testing.assert_close(ours, reference, atol=1e-12, rtol=1e-12)
    assert results[0][0].shape == (batch, steps, 32) and results[0][-1].abs().sum() > 0


def test_initial_memory_comes_from_h_and_i():
    generator = TemporalGenerator(SMALL_G)
    i = torch.randn(2, 32)
    state, _ = generator.init(i)
    torch.testing.assert_close(torch.cat(state[:3], -1), generator.H(i))
    assert torch.equal(state[3], i)


def test_outputs_depend_on_per_step_noise():
    torch.manual_seed(0)
    generator = TemporalGenerator(SMALL_G)
    i, s = generator.sample_inputs(1, 10)
    a = generator(i, s)
    b = generator(i, torch.randn_like(s))
    assert torch.equal(a[:, 0], b[:, 0]) and not torch.allclose(a[:, -1], b[:, -1])


def test_gradient_angle_penalty_can_differentiate_through_g_twice():
    torch.manual_seed(0)
    generator = TemporalGenerator(SMALL_G)
    i, s = generator.sample_inputs(4, 25)
    i.requires_grad_(True)
    s.requires_grad_(True)
    _, latents = generator.unroll(i, s)
    d = (latents[:, -1] - latents[:, 0]).norm(dim=1).sum()
    grad_i, grad_s = torch.autograd.grad(d, (i, s), create_graph=True)
    phi = torch.atan2(grad_s.flatten(1).norm(dim=1), grad_i.norm(dim=1))
    torch.clamp(torch.pi / 4 - phi, min=0).pow(2).mean().backward()
    grads = [p.grad for p in generator.P.parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_critic_maps_windows_to_scalars():
    critic = TemporalCritic(TemporalCriticConfig(n_styles=18, style_dim=512))
    scores = critic(torch.randn(3, 25, 18, 512))
    assert scores.shape == (3,)
    with pytest.raises(ValueError, match="25 frames"):
        critic(torch.randn(3, 24, 18, 512))


@pytest.mark.parametrize("window", [16, 25, 75])
def test_critic_accepts_any_configured_window(window):
    critic = TemporalCritic(TemporalCriticConfig(window=window, n_styles=4, style_dim=8))
    assert critic(torch.randn(2, window, 4, 8)).shape == (2,)


def test_critic_is_per_sample_no_batch_statistics():
    torch.manual_seed(0)
    critic = TemporalCritic(TemporalCriticConfig(n_styles=4, style_dim=8))
    x = torch.randn(5, 25, 4, 8)
    torch.testing.assert_close(critic(x)[2:3], critic(x[2:3]))


def test_critic_standardises_its_input_with_the_training_codes_statistics():
    """An actor whose codes sit at a large offset and move little must score like one at the origin moving a lot:
    C sees (w - mean) / rms, so shifting and scaling the training codes changes nothing."""
    torch.manual_seed(0)
    critic = TemporalCritic(TemporalCriticConfig(n_styles=4, style_dim=8))
    codes = torch.randn(200, 4, 8)
    critic.set_input_statistics(codes)
    windows = codes[:50].reshape(2, 25, 4, 8)
    scores = critic(windows)
    shifted = codes * 0.05 + torch.linspace(-3, 3, 32).reshape(4, 8)
    critic.set_input_statistics(shifted)
    torch.testing.assert_close(critic(shifted[:50].reshape(2, 25, 4, 8)), scores, rtol=1e-4, atol=1e-5)
    assert critic.state_dict()["input_scale"].item() == pytest.approx(0.05 * codes.std(0).pow(2).mean().sqrt().item(),
                                                                        rel=1e-2)
