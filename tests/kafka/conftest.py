"""Fixtures of the tests that start brokers of their own."""

import socket

import pytest


@pytest.fixture
def spare_port():
    """A base port whose broker and controller ports are all free."""
    for base in range(19092, 19992, 100):
        if all(_free(p) for p in (base, base + 1, base + 2, base + 10, base + 11, base + 12)):
            return base
    pytest.fail("no free port range for a second broker")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0
