"""The retry policy: the OpenAI SDK's backoff, and retries only before the first chunk."""
import pytest

from providers import Chunk
from providers.errors import AuthError, UpstreamUnavailableError
from providers.retry import RetryPolicy, retry_before_first_chunk


def test_backoff_doubles_from_half_a_second_with_at_most_a_quarter_off():
    policy = RetryPolicy(max_retries=6)
    for attempt, full in enumerate([0.5, 1, 2, 4, 8, 8]):
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(0.75 * full <= d <= full for d in delays)
        assert max(delays) - min(delays) > 0  # jittered, so replicas do not retry in step


def test_retry_after_is_honoured_up_to_sixty_seconds_and_beyond_that_we_give_up():
    policy = RetryPolicy()
    assert policy.delay(0, retry_after=42) == 42
    assert policy.delay(0, retry_after=61) is None


def test_at_most_two_retries():
    assert RetryPolicy().delay(2) is None


def test_a_failure_after_the_first_chunk_is_never_retried():
    attempts = []

    def open_stream():
        attempts.append(1)
        yield Chunk(text="partial")
        raise UpstreamUnavailableError()

    chunks = retry_before_first_chunk(open_stream, RetryPolicy(), sleep=lambda s: None)
    assert next(chunks).text == "partial"
    with pytest.raises(UpstreamUnavailableError):
        next(chunks)
    assert len(attempts) == 1


def test_retryable_failures_before_the_first_chunk_are_retried_then_raised():
    waits = []

    def open_stream():
        raise UpstreamUnavailableError()
        yield  # a generator, like every provider's attempt

    with pytest.raises(UpstreamUnavailableError):
        list(retry_before_first_chunk(open_stream, RetryPolicy(), sleep=waits.append))
    assert len(waits) == 2


def test_a_non_retryable_failure_is_raised_at_once():
    waits = []

    def open_stream():
        raise AuthError()
        yield

    with pytest.raises(AuthError):
        list(retry_before_first_chunk(open_stream, RetryPolicy(), sleep=waits.append))
    assert waits == []
