"""Semi-discrete OT solver and extended map (zoo.ot.semidiscrete, zoo.ot.extended_map).

References are independent of the code under test: brute-force score matrices, closed-form 1-D cells,
POT's ``ot.semidiscrete.solve_semidiscrete`` and ``ot.emd``, and hand-computed facet angles.
"""

import math

import numpy as np
import pytest
import torch

ot = pytest.importorskip("ot")

from zoo.errors import ConfigError  # noqa: E402
from zoo.ot.extended_map import calibrate_threshold, extended_map, facet_angles  # noqa: E402
from zoo.ot.semidiscrete import SemiDiscreteOT, power_argmax, power_topk, row_max, semi_discrete_ot  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ chunked scores vs brute force
@pytest.mark.parametrize("n_targets,d,ct,cs", [(37, 3, 8, 16), (517, 5, 128, 100), (300, 2, 1000, 1000)])
def test_power_argmax_and_topk_match_brute_force(n_targets, d, ct, cs):
    g = torch.Generator().manual_seed(n_targets)
    y, h, x = torch.randn(n_targets, d, generator=g), torch.randn(n_targets, generator=g), torch.rand(333, d, generator=g)
    full = x @ y.T + h  # the whole score matrix
    v, i = power_argmax(x, y, h, chunk_targets=ct, chunk_samples=cs)
    assert torch.equal(i, full.argmax(1))
    assert torch.allclose(v, full.max(1).values, atol=1e-5)
    tv, ti = power_topk(x, y, h, 6, chunk_targets=ct, chunk_samples=cs)
    ref_v, ref_i = full.topk(6, dim=1)
    assert torch.equal(ti, ref_i)
    assert torch.allclose(tv, ref_v, atol=1e-5)


@pytest.mark.parametrize("width", [5, 64, 200, 1024, 1031])
def test_row_max_matches_torch_max(width):
    s = torch.randn(257, width, generator=torch.Generator().manual_seed(width))
    v, i = row_max(s)
    ref_v, ref_i = s.max(1)
    assert torch.equal(v, ref_v) and torch.equal(i, ref_i)


# ------------------------------------------------------------------ closed forms (1-D, two cells)
@pytest.mark.parametrize("source,boundary", [("uniform", -0.2), ("gaussian", float(torch.distributions.Normal(0, 1).icdf(torch.tensor(0.3))))])
def test_two_cells_closed_form(source, boundary):
    """y = ∓1, ν = (0.3, 0.7): the cells meet at x* with μ(x < x*) = 0.3, and −x* + h1 = x* + h2 ⇒ h1 − h2 = 2x*.
    Uniform on [−0.5, 0.5]: x* = −0.2; Gaussian: x* = Φ⁻¹(0.3)."""
    y = torch.tensor([[-1.0], [1.0]])
    s = semi_discrete_ot(y, torch.tensor([0.3, 0.7]), source=source, max_iters=300, lr=1e-2, tol_tv=0.0,
                         n_samples=4096, max_samples=2**14, patience=20, seed=0)
    assert abs(float(s.h[0] - s.h[1]) - 2 * boundary) < 4e-3
    assert abs(float(s.h.sum())) < 1e-5  # mean-centred


# ------------------------------------------------------------------ against POT's semi-discrete solver
def test_matches_pot_solve_semidiscrete():
    g = torch.Generator().manual_seed(1)
    y = torch.rand(30, 2, generator=g) - 0.5
    ours = semi_discrete_ot(y, max_iters=500, lr=1e-2, n_samples=4096, max_samples=2**15, patience=20,
                            lr_decay=0.7, tol_tv=0.0, seed=0)
    yn = y.double().numpy()
    rng = np.random.default_rng(0)
    gpot = ot.semidiscrete.solve_semidiscrete(yn, lambda b: rng.random((b, 2)) - 0.5, reg=0.0, max_iter=3000,
                                              batch_size=256, lr0=1.0)
    h_pot = (np.asarray(gpot) - (yn ** 2).sum(1)) / 2  # POT's cell argmin |x−y|² − g ⇔ argmax ⟨x,y⟩ + (g − |y|²)/2
    h_pot -= h_pot.mean()
    assert np.abs(h_pot - ours.h.double().numpy()).max() <= 5e-3
    x = torch.rand(200_000, 2, generator=torch.Generator().manual_seed(7)) - 0.5
    pot_cells = torch.from_numpy((x.double().numpy() @ yn.T + h_pot).argmax(1))
    assert (ours.assign(x) == pot_cells).double().mean() >= 0.97
    masses = torch.bincount(ours.assign(x), minlength=30).double() / x.shape[0]
    assert float((masses * 30 - 1).abs().max()) <= 0.08


def test_fixed_cloud_matches_emd():
    """On a fixed cloud the solver solves the discrete OT; its assignment cost must equal ot.emd's optimum."""
    y = torch.rand(8, 2, generator=torch.Generator().manual_seed(3)) - 0.5
    s = SemiDiscreteOT(y, sampler="fixed", method="adam", n_samples=1024, max_samples=1024, lr=5e-3, patience=50,
                       lr_decay=0.7, tol_tv=0.0, seed=5)
    s.fit(1500)
    cloud = s.sample_source(1024, seed=5)
    idx = s.assign(cloud)
    counts = torch.bincount(idx, minlength=8).double()
    assert float((counts / 1024 - 1 / 8).abs().sum() / 2) <= 0.01
    cost = ot.dist(cloud.double().numpy(), y.double().numpy())  # squared Euclidean
    a, b = np.full(1024, 1 / 1024), np.full(8, 1 / 8)
    plan, log = ot.emd(a, b, cost, log=True)
    ours_cost = float(cost[np.arange(1024), idx.numpy()].mean())
    # our map is a power-diagram assignment, so it is optimal for its own marginals; they match ν within 1 %
    assert abs(ours_cost - log["cost"]) <= 0.02 * log["cost"]
    h_emd = (log["v"] - (y.double().numpy() ** 2).sum(1)) / 2
    h_emd -= h_emd.mean()
    assert np.abs(h_emd - s.h.double().numpy()).max() <= 0.03


def test_convergence_criteria_and_resume():
    y = torch.rand(50, 3, generator=torch.Generator().manual_seed(4)) - 0.5
    kw = dict(method="adam", lr=1e-2, n_samples=4096, max_samples=2**15, patience=20, tol_tv=0.0, seed=2)
    a = SemiDiscreteOT(y, **kw)
    a.fit(60)
    b = SemiDiscreteOT(y, **kw)
    b.fit(30)
    c = SemiDiscreteOT(y, **kw)
    c.load_state_dict(b.state_dict())
    c.fit(30)
    assert torch.allclose(a.h, c.h, atol=1e-6) and a.t == c.t == 60
    s = SemiDiscreteOT(y, lr=1e-2, n_samples=4096, max_samples=2**16, patience=20, tol_tv=0.02, seed=2).fit(2000)
    assert s.converged and s.history[-1]["tv"] <= 0.02 and s.history[-1]["empty"] == 0
    # fresh i.i.d. check with an independent histogram
    x = torch.rand(2**18, 3, generator=torch.Generator().manual_seed(11)) - 0.5
    w = torch.bincount((x @ y.T + s.h).argmax(1), minlength=50).double() / x.shape[0]
    assert float((w - 1 / 50).abs().sum() / 2) <= 0.035
    assert {"tv", "max_rel", "empty", "energy", "n_samples", "lr"} <= set(s.history[-1])


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError):
        SemiDiscreteOT(torch.zeros(3, 2), source="cauchy")
    with pytest.raises(ConfigError):
        SemiDiscreteOT(torch.zeros(3, 2), weights=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ConfigError):
        power_topk(torch.zeros(2, 2), torch.zeros(3, 2), torch.zeros(3), k=4)


# ------------------------------------------------------------------ extended map: angle test + interpolation
def test_facet_angles_hand_computed():
    y = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [1.0, 1.0]])
    th = facet_angles(y, torch.tensor([0, 1, 0, 1]), torch.tensor([1, 2, 0, 3]))
    # n = (y, −1)/|(y, −1)|: (0,0,−1)·(1,0,−1)/√2 = 1/√2 → π/4; (1,0,−1)·(−1,0,−1)/2 = 0 → π/2;
    # (1,0,−1)/√2 · (1,1,−1)/√3 = 2/√6
    ref = torch.tensor([math.pi / 4, math.pi / 2, 0.0, math.acos(2 / math.sqrt(6))])
    assert torch.allclose(th, ref, atol=1e-6)
    assert abs(calibrate_threshold(torch.arange(101.0), 90.0) - 90.0) < 1e-9


def _two_clusters():
    """Two mirror-symmetric 3×3 clusters around (∓1, 0) (spacing 0.05), h = 0: by symmetry the OT map's
    singular set is the line x₁ = 0, cross-cluster facet angles are ≈ π/2 and within-cluster ones < 0.1."""
    u = torch.tensor([-0.05, 0.0, 0.05])
    c = torch.cartesian_prod(u, u)
    y = torch.cat([c + torch.tensor([-1.0, 0.0]), c + torch.tensor([1.0, 0.0])])
    label = torch.arange(18) >= 9
    return y, torch.zeros(18), label


def test_angle_test_rejects_exactly_the_cross_cluster_pairs():
    y, h, label = _two_clusters()
    x = torch.rand(4000, 2, generator=torch.Generator().manual_seed(0)) - 0.5
    out = extended_map(x, y, h, k=12, threshold=0.3, lam=0.5, generator=torch.Generator().manual_seed(1))
    _, idx = power_topk(x, y, h, 12)
    cross = label[idx[:, 1:]] != label[idx[:, :1]]
    assert torch.equal(out.accepted, ~cross)  # rejected ⇔ the pair straddles the singular set
    assert 0.0 < out.rejected_fraction < 1.0
    # a = the cell of x (left cluster iff x₁ < 0 by symmetry)
    assert torch.equal(label[out.a], x[:, 0] > 0)


def test_interpolation_never_crosses_the_singular_set():
    y, h, label = _two_clusters()
    x = torch.rand(4000, 2, generator=torch.Generator().manual_seed(2)) - 0.5
    out = extended_map(x, y, h, k=12, threshold=0.3, lam=None, generator=torch.Generator().manual_seed(3))
    # every code stays in the convex hull of one cluster: |x₁| ∈ [0.95, 1.05]
    assert bool(((out.codes[:, 0].abs() - 1).abs() <= 0.05 + 1e-6).all())
    assert torch.allclose(out.codes, (1 - out.lam)[:, None] * y[out.a] + out.lam[:, None] * y[out.b])
    assert bool((label[out.a] == label[out.b]).all()) and out.interpolated_fraction > 0.9
    # the same map without the angle test does cross the gap (so the assertion above can fail)
    loose = extended_map(x, y, h, k=12, threshold=math.pi, lam=None, generator=torch.Generator().manual_seed(3))
    assert bool((loose.codes[:, 0].abs() < 0.9).any())


def test_fixed_weight_and_percentile_threshold():
    y, h, _ = _two_clusters()
    x = torch.rand(1000, 2, generator=torch.Generator().manual_seed(4)) - 0.5
    out = extended_map(x, y, h, k=4, threshold=None, percentile=50.0, lam=0.75)
    assert abs(out.threshold - float(torch.quantile(out.angles.reshape(-1), 0.5))) < 1e-6
    kept = out.accepted.any(1)
    assert torch.allclose(out.codes[kept], 0.25 * y[out.a[kept]] + 0.75 * y[out.b[kept]])
    assert torch.equal(out.codes[~kept], y[out.a[~kept]])
