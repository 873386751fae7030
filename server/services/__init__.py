"""The service layer: what a request, a socket message or a command asks the system to do —
scope checked, one transaction, audited, events published. Services take their dependencies as
one :class:`server.services.deps.Deps` (session factory, clock, bus, settings), never the aiohttp
app: the same call works from a route, the live socket, a test or a script."""
