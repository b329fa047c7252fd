"""The worker's parts, each with one job; ``streams.app.create_app`` wires them.

- ``kafka``: what the parts need of Kafka (the group member's consumer, the producer), as
  small interfaces that tests can fake without a broker.
- ``routing``: which topic each thing a batch gives goes to (outputs, dead letters,
  re-keyed copies), and the topics of the input sources (``taggers.sources``).
- ``sending``: sends a batch's records and waits for the broker's acks.
- ``fetches``: fetch handling, the delivery guarantee: prepare each partition's batch,
  send, save with the conflict retry, ack; read again when a fetch's parts share users.
- ``timers``: deadline sweeps by the event clock (after each fetch) or the wall clock.
- ``gauges``: consumer lag, and stage and audience populations.
- ``views``: the HTTP routes (probes, metrics, profiles, audiences).

Live rules (reload and recompute) are ``streams.live_rules``.
"""
