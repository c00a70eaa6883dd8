"""The logsink: persists job log lines and service log records, and answers history queries."""
