"""The gateway: HTTP API, live event streams (SSE) and the web UI, over NATS JetStream."""
