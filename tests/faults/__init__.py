"""Fault injection over real sockets: misbehaving Voice Live peers on 127.0.0.1 (issue 5)."""
