"""Counter-based randomness: a pure function of its key, and every key part matters."""

import numpy as np

from freshrank.market.rand import Purpose, hashed_uniform


def test_hashed_uniform_is_keyed_and_uniform():
    a = np.arange(20000)[:, None]
    b = np.arange(2)[None, :]
    u = hashed_uniform(3, 5, Purpose.RESPOND, a, b)
    assert u.shape == (20000, 2) and (u >= 0).all() and (u < 1).all()
    assert abs(u.mean() - 0.5) < 0.01 and abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.03
    # computing one element alone gives the same number as inside the batch
    assert hashed_uniform(3, 5, Purpose.RESPOND, np.array([[1234]]), np.array([[1]]))[0, 0] == u[1234, 1]
    for other in (hashed_uniform(4, 5, Purpose.RESPOND, a, b), hashed_uniform(3, 6, Purpose.RESPOND, a, b),
                  hashed_uniform(3, 5, Purpose.RANK, a, b), hashed_uniform(3, 5, Purpose.RESPOND, a + 1, b)):
        assert np.mean(other == u) < 0.001
