"""The hoinghi domain: units, roles and scope, and (later) meetings, KPIs, directives.

Rules here are plain Python with no aiohttp and no aiortc; ORM models live in
``sessions.models`` and async store functions taking a DB session in ``sessions.store``.
"""
