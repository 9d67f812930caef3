"""The closed-form ICNN gradient is the same method as autograd's: ψ, ∇ψ and the W2GN loss's parameter gradients
equal the autograd reference (float64, 1e-6) for every ICNN shape the committed configs use; the compiled loss
equals the eager one and falls back cleanly when it cannot build."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from zoo.ot.icnn import ICNN, conjugate_argmax, potential_grad, potential_grad_autograd
from zoo.ot.w2 import default_hidden, w2gn_loss

ROOT = Path(__file__).resolve().parents[1]
_DIMS = {"Synthetic2D": lambda a: 2, "Digits": lambda a: int(a.get("image_size", 8)) ** 2,
         "StackedDigits": lambda a: 3 * int(a.get("image_size", 8)) ** 2}


def config_shapes():
    """(config, d, widths) of every ICNN W2-GAN config in configs/icnn_w2gan/."""
    out = []
    for path in sorted((ROOT / "configs/icnn_w2gan").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        d = _DIMS[cfg["data"]["class_path"].rpartition(".")[2]](cfg["data"].get("init_args") or {})
        hidden = cfg["model"]["init_args"].get("icnn_hidden") or default_hidden(d)
        out.append((path.stem, d, list(hidden)))
    return out


def perturbed(net: ICNN, seed: int) -> ICNN:
    """A float64 copy of ``net`` with every parameter moved off its initialisation (z-weights kept ≥ 0)."""
    net = net.double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    net.convexify()
    return net


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1.0))


def test_every_config_has_an_icnn_shape():
    shapes = config_shapes()
    assert {name for name, _, _ in shapes} >= {"ring8", "grid25", "digits", "stacked_digits", "two_squares"}


@pytest.mark.parametrize("name,d,hidden", config_shapes())
@pytest.mark.parametrize("activation", ["celu", "softplus", "leaky_relu", "relu"])
def test_value_and_grad_equal_autograd_on_config_shapes(name, d, hidden, activation):
    torch.manual_seed(0)
    for positivity in ("clamp", "softplus"):
        net = perturbed(ICNN(d, hidden=hidden, activation=activation, positivity=positivity), seed=1)
        x = 1.5 * torch.randn(64, d, dtype=torch.float64)
        value, grad = net.value_and_grad(x)
        assert rel_err(value, net(x)) < 1e-6
        assert rel_err(grad, potential_grad_autograd(net, x)) < 1e-6
        assert rel_err(potential_grad(net, x), potential_grad_autograd(net, x)) < 1e-6  # the dispatching entry


def test_value_and_grad_on_edge_shapes():
    """No hidden layer, no quadratic skip, rank 2, no head, no strong convexity: each path of the closed form."""
    torch.manual_seed(0)
    for kw in (dict(hidden=[]), dict(hidden=[7], rank=0), dict(hidden=[5, 3], rank=2),
               dict(hidden=[6, 4], quadratic_head=False, strong_convexity=0.0)):
        net = perturbed(ICNN(3, **kw), seed=2)
        x = torch.randn(20, 3, dtype=torch.float64)
        value, grad = net.value_and_grad(x)
        assert rel_err(value, net(x)) < 1e-10 and rel_err(grad, potential_grad_autograd(net, x)) < 1e-10


def test_closed_form_gradient_matches_finite_differences():
    """An independent check of ∇ψ (no autograd at all): central differences of ψ, float64."""
    net = perturbed(ICNN(2, hidden=[16, 16, 8]), seed=3)
    x = torch.randn(10, 2, dtype=torch.float64)
    _, grad = net.value_and_grad(x)
    h = 1e-6
    with torch.no_grad():
        fd = torch.stack([(net(x + h * e) - net(x - h * e)) / (2 * h) for e in torch.eye(2, dtype=x.dtype)], 1)
    assert rel_err(grad, fd) < 1e-7


@pytest.mark.parametrize("name,d,hidden", [s for s in config_shapes() if s[0] in ("ring8", "digits")])
def test_w2gn_loss_parameter_gradients_equal_autograd(name, d, hidden):
    """The second-order path: the loss and every parameter gradient of both potentials (the training signal) equal
    the double-backward reference, including the ψ(sg[∇ψ̄(y)]) term taken from the cycle pass."""
    psi = perturbed(ICNN(d, hidden=hidden), seed=4)
    bar = perturbed(ICNN(d, hidden=hidden), seed=5)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(48, d, generator=g, dtype=torch.float64)
    y = 0.5 + torch.randn(48, d, generator=g, dtype=torch.float64)
    params = list(psi.parameters()) + list(bar.parameters())
    ref = w2gn_loss(psi, bar, x, y, float(d), grad="autograd")
    ref_g = torch.autograd.grad(ref, params, allow_unused=True)
    new = w2gn_loss(psi, bar, x, y, float(d))
    new_g = torch.autograd.grad(new, params, allow_unused=True)
    assert abs(float(new - ref)) <= 1e-9 * max(1.0, abs(float(ref)))
    # ψ̄ enters only through ∇ψ̄, so its constant bias gets no gradient
    assert sum(g is None for g in ref_g) == 1
    for a, b, p in zip(new_g, ref_g, params):
        a = torch.zeros_like(p) if a is None else a
        b = torch.zeros_like(p) if b is None else b
        assert rel_err(a, b) < 1e-6


def test_w2gn_loss_rejects_unknown_grad():
    from zoo.errors import ConfigError

    net = ICNN(2, hidden=[4])
    with pytest.raises(ConfigError, match="closed_form"):
        w2gn_loss(net, net, torch.zeros(2, 2), torch.zeros(2, 2), 1.0, grad="finite")


def test_conjugate_with_closed_form_matches_autograd_route():
    """The restricted solver's conjugate argmax (L-BFGS on ⟨x, y⟩ − ψ(x) with the closed-form gradient) satisfies the
    first-order condition ∇ψ(x̂) = y by autograd's gradient."""
    torch.manual_seed(0)
    net = ICNN(2, hidden=[32, 32, 16], strong_convexity=0.1)
    y = torch.randn(200, 2)
    x_hat = conjugate_argmax(net, y, max_iter=100, tol=1e-6)
    assert float((potential_grad_autograd(net, x_hat) - y).abs().max()) < 1e-3


def _train_steps(compile_flag: bool, steps: int = 3):
    from zoo.icnn_w2gan import ICNNW2GAN, _COMPILED  # noqa: F401

    torch.manual_seed(0)
    model = ICNNW2GAN(latent_dim=2, hidden=[16], icnn_hidden=[16, 8], pretrain_steps=0, compile=compile_flag,
                      data_shape=(2,))
    model.ensure_built((2,))
    model.data_scale.fill_(1.0)
    psi, bar = model.psi, model.psi_bar
    from zoo.icnn_w2gan import _w2gn_loss

    x = torch.randn(64, 2)
    y = torch.randn(64, 2) + 1.0
    return [float(_w2gn_loss(compile_flag)(psi, bar, x, y, 2.0)) for _ in range(steps)]


def test_compile_falls_back_to_eager_with_one_warning(monkeypatch):
    import zoo.icnn_w2gan as mod

    monkeypatch.setattr(mod, "_COMPILED", {})

    def broken_compile(fn, **kw):
        def call(*a, **k):
            raise RuntimeError("no C++ compiler found\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = _train_steps(True)
    eager = _train_steps(False)
    assert compiled == eager
    msgs = [str(w.message) for w in caught if "torch.compile" in str(w.message)]
    assert len(msgs) == 1 and "no C++ compiler found" in msgs[0] and "\n" not in msgs[0]


def test_compiled_loss_equals_eager():
    """torch.compile of the W2GN loss (on by default in the configs) computes the same loss (float32 round-off)."""
    import zoo.icnn_w2gan as mod

    mod._COMPILED.clear()
    compiled = _train_steps(True)
    if mod._COMPILED.get("failed"):
        pytest.skip("torch.compile cannot build on this machine")
    eager = _train_steps(False)
    assert all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5) for a, b in zip(compiled, eager))


def test_one_adam_over_both_potentials_is_two_adams():
    """The w2gn discriminator step uses one Adam over ψ and ψ̄ (two parameter groups) since issue #20: per-parameter
    Adam is the same arithmetic, so the trajectory equals two separate Adams' (the code before), step by step."""
    def train(one_optimizer: bool):
        torch.manual_seed(0)
        psi, bar = ICNN(2, hidden=[16, 8]), ICNN(2, hidden=[16, 8])
        if one_optimizer:
            opts = [torch.optim.Adam([{"params": psi.parameters()}, {"params": bar.parameters()}], 1e-2,
                                     betas=(0.5, 0.9), fused=True)]
        else:
            opts = [torch.optim.Adam(n.parameters(), 1e-2, betas=(0.5, 0.9), fused=True) for n in (psi, bar)]
        g = torch.Generator().manual_seed(1)
        for _ in range(5):
            x, y = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g) + 1.0
            loss = w2gn_loss(psi, bar, x, y, 2.0)
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            for o in opts:
                o.step()
            psi.convexify()
            bar.convexify()
        return [p.detach().clone() for p in list(psi.parameters()) + list(bar.parameters())]

    for a, b in zip(train(True), train(False)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_convexify_is_the_projection_onto_nonnegative_z_weights():
    """W ← max(W, 0) on every z-path weight (and the output weight), nothing else touched."""
    torch.manual_seed(0)
    net = ICNN(3, hidden=[8, 8, 4])
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.convexify()
    z_names = {n for n, _ in net.named_parameters() if n.startswith("z_weights") or n == "w_out"}
    assert z_names
    for k, v in net.state_dict().items():
        expect = before[k].clamp(min=0) if k in z_names else before[k]
        assert torch.equal(v, expect), k
    assert net.is_convex_parametrisation()
