"""The pure core: plans and decisions from spec, status, observation and `now`.

It imports no kopf, no Kubernetes or Prometheus client, does no I/O and reads no clock;
`.importlinter` checks that contract.
"""
