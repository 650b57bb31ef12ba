"""Offers: rules, schedules, unlocks, codes, redemption and measurement. Imports no Flask."""
