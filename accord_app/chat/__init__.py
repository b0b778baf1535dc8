"""The chat: the channel's actor and what it needs, with no web framework (`channel`,
`protocol`, `ratelimit`, `cost`, `sharding`, `failures`); its HTTP and WebSocket routes are in
`chat.http`."""
