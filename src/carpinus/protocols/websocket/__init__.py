"""WebSocket connections, after the C HTTP protocol has seen the upgrade.

handler    WebSocketHandler: what the C core hands an upgrade to (one per
           server); starts a WebSocketProtocol per connection
protocol   WebSocketProtocol: one connection -- the handshake answer, frames
           in and out (the C core's WsCodec), the ASGI websocket messages
handshake  checks the upgrade request and builds the 101 (or refusal) answer

Imports point down this list: protocol imports the handler only for typing.
"""
