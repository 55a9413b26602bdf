"""Test support: what the tests, the fuzz harness (fuzz/harness.py) and the
soak script (scripts/soak.py) share.  Nothing here is a test.

servers          run_server / ServerHandle: carpinus in a thread on a free port;
                 LOOPS, the event loops the suite runs on (CARPINUS_TEST_LOOPS);
                 apply_optimizations_leg (CARPINUS_TEST_OPTIMIZATIONS=off|all)
processes        Spawner / ServerProcess: carpinus (or gunicorn) as a real
                 process, its log read as it is written; /proc helpers, Load
clients          RawClient (strict raw HTTP/1.1 over TCP or TLS), build_request,
                 chunked, httpx set up for the TLS leg
ws_clients       connect_ws (the `websockets` client) and RawWebSocket (raw frames)
chromium         headless Chromium driven over its DevTools protocol (launch, Browser.tab,
                 Tab.evaluate): a real browser as a client
response_parser  the one HTTP/1.1 response parser (sans-IO), used by RawClient,
                 the fuzz harness and the soak script
waiting          wait_for: the one way to wait for another thread or process
apps             small raw-ASGI HTTP apps (ws_apps: WebSocket ones)
process_apps     apps a server process imports by name ("tests.support.process_apps:app")
tls_leg          the TLS leg (CARPINUS_TEST_TLS=1): a session CA and certificates
fake_transport   the one fake asyncio transport: reads, writes, flow control,
                 close and TLS behaviour under the caller's control, plus
                 cancellation from outside (timeouts, cancel scopes)
fake_server      a real ServerState (made as the server makes it) with its
                 connections over the fake transport and its deadline clock
                 frozen, moved on by the test (timeouts without sleeping)
"""
