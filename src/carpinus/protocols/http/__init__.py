"""HTTP/1.1, whose protocol and request cycle live in C (carpinus._core).

core  the Python side of the C core: builds its ServerState from a Config
      and provides what the core calls back (exception and refusal logging,
      the access log, the proxy-headers fix-up, the WebSocket hand-off)
"""
