import numpy as np
import pytest

from learning.esn import EchoStateNetwork, EsnError, mackey_glass, nrmse


def test_esn_predicts_mackey_glass_one_step():
    """One-step prediction of the chaotic Mackey-Glass series (tau=17): NRMSE below 0.05."""
    series = mackey_glass(2500)
    u, y = series[:-1, None], series[1:, None]
    esn = EchoStateNetwork(1, 1, reservoir=200, spectral_radius=0.95, leak=0.3).init(np.random.default_rng(0))
    states = esn.run(u)
    washout, split = 100, 2000
    esn.fit(states[washout:split], u[washout:split], y[washout:split])
    error = nrmse(esn.predict(states[split:], u[split:]), y[split:])
    assert error < 0.05
    # and it beats persistence (predict u_t for u_{t+1}) by a wide margin
    assert error < 0.2 * nrmse(u[split:], y[split:])


def test_noisy_sine_and_spectral_radius():
    rng = np.random.default_rng(1)
    t = np.arange(1500)
    clean = np.sin(2 * np.pi * t / 25)
    noisy = clean + 0.05 * rng.standard_normal(len(t))
    esn = EchoStateNetwork(1, 1, reservoir=100, spectral_radius=0.8).init(np.random.default_rng(2))
    assert np.max(np.abs(np.linalg.eigvals(esn.w))) == pytest.approx(0.8)
    states = esn.run(noisy[:-1, None])
    esn.fit(states[50:1200], noisy[:-1, None][50:1200], clean[1:, None][50:1200])
    assert nrmse(esn.predict(states[1200:], noisy[:-1, None][1200:]), clean[1:, None][1200:]) < 0.15


def test_rejects_unstable_reservoir():
    with pytest.raises(EsnError, match="spectral_radius"):
        EchoStateNetwork(1, 1, spectral_radius=1.2)
