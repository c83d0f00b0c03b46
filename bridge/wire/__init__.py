"""The wire between the bridge and the Expert Advisors: the protocol's constants and validation (``protocol``), the
ZeroMQ server (``server``) with its state, journal and rate limit, the Lazy Pirate client (``client``) and CURVE keys
(``keys``). The command lines are ``python -m bridge.serve``, ``bridge.client`` and ``bridge.keys``."""
