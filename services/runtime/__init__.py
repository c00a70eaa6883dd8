"""Plumbing every service needs (connecting, stream set-up, log shipping, process lifecycle).

Not part of the wire contract: it is the code the three services would otherwise each write
again. It imports only the contract, never a service.
"""
