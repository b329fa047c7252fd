"""Thin wiring of the engine to Kafka (Faust) and Redis. Arrives with the streaming worker."""

__all__: list[str] = []
