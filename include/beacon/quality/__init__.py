"""Data quality: expectation results in the warehouse and the circuit breaker activation checks."""
