"""Live state: the event bus (in-process or Redis) and the websocket hub."""
