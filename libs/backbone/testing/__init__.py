"""Test support: real Kafka and PostgreSQL for integration tests, and waiting with deadlines."""
