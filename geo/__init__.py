"""Geography: geofences, location fixes, presence codes, check-in verification, spatial queries.

Imports neither Flask nor `offers`."""
