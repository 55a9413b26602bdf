"""Test support shared by the test suite and the fuzz harness (fuzz/harness.py).

fake_transport  the one fake asyncio transport: reads, writes, flow control,
                close and TLS behaviour under the caller's control, plus
                cancellation from outside (timeouts, cancel scopes)
fake_server     a real ServerState (made as the server makes it) with its
                connections over the fake transport and its deadline clock
                frozen, moved on by the test (timeouts without sleeping)
"""
