"""The chat over HTTP: the channels' routes and WebSocket endpoint, the server-wide fan-outs
(activity, announcements), and calls to actors hosted by another worker (`remote`)."""
