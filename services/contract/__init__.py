"""The contract the services share: subject names, event types and stream configurations.

Nothing else is shared between the gateway, the processor and the logsink; they talk only through
the NATS subjects named here.
"""
