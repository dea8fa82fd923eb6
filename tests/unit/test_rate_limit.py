"""The doors' per-process rate limit: a bucket per key, refilled over time up to its burst, and a
bounded number of keys."""

from services.api.rate_limit import RateLimit


def test_a_bucket_admits_its_burst_then_its_rate() -> None:
    now = [0.0]
    limit = RateLimit(2.0, 3.0, clock=lambda: now[0])
    assert [limit.take("a") for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5
    assert [limit.take("a") for _ in range(2)] == [True, False]
    now[0] += 100
    assert [limit.take("a") for _ in range(4)] == [True, True, True, False]


def test_keys_have_their_own_buckets_and_the_oldest_is_forgotten() -> None:
    now = [0.0]
    limit = RateLimit(1.0, 1.0, max_keys=2, clock=lambda: now[0])
    assert limit.take("a") and not limit.take("a")
    assert limit.take("b") and not limit.take("b")
    assert limit.take("c")  # a is forgotten: three keys are over the bound
    assert limit.take("a")
    assert not limit.take("c")
