"""The `jobline` command line."""
