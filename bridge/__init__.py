"""EA Bridge runtime core: labels and prompts, analyzers, policy, news feeds, wire protocol, server and client."""

__version__ = "0.1.0"
