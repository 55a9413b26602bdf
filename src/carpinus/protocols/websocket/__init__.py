"""WebSocket connections, after the C HTTP protocol has seen the upgrade.

handler    WebSocketHandler: what the C core hands an upgrade to (one per
           server); starts a WebSocketProtocol per connection
protocol   WebSocketProtocol: one connection -- the handshake answer, frames
           in and out (wsproto's frame layer), the ASGI websocket messages
handshake  checks the upgrade request and builds the 101 (or refusal) answer
frames     the fast path for small unfragmented frames

Imports point down this list: protocol imports the handler only for typing.
"""
