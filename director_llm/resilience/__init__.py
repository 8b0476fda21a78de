"""Circuit breaker, health and Retry-After: what keeps a dead deployment out of the way."""
