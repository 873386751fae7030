"""The demo's data and processes (``hoinghi demo``): the seed report's conference, its KPI figures,
the demo accounts and the demo bridges. Outside the serving code: nothing in ``server/`` but the
CLI entry point imports it."""
