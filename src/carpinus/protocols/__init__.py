"""The protocols a connection speaks, below the server and above the C core.

http       HTTP/1.1: the protocol and its request cycle are C (carpinus._core);
           http/core.py builds the core's ServerState and takes its callbacks
websocket  WebSocket connections handed over by the C protocol after an upgrade

Nothing here imports the server, the supervisors or carpinus.main.
"""
