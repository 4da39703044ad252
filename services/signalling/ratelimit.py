"""Token buckets for per-session and per-key rate limits."""

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """Allows `burst` events at once and `rate_per_s` on average; times come from the caller."""

    rate_per_s: float
    burst: float
    tokens: float = -1.0
    updated_s: float = 0.0

    def allow(self, now_s: float, cost: float = 1.0) -> bool:
        if self.tokens < 0:
            self.tokens = self.burst
            self.updated_s = now_s
        self.tokens = min(self.burst, self.tokens + (now_s - self.updated_s) * self.rate_per_s)
        self.updated_s = now_s
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def is_full(self, now_s: float) -> bool:
        """Tell whether the bucket has refilled to its burst size by `now_s`."""
        if self.tokens < 0:
            return True
        return self.tokens + (now_s - self.updated_s) * self.rate_per_s >= self.burst
