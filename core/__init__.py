"""Shared core: the relational schema, the unit of work, domain errors and accounts."""
