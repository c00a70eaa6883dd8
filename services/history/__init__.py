"""The history service: every job and every event of the job stream, kept in a database (SQLite
embedded, PostgreSQL when configured), answering the gateway's history queries over NATS."""
