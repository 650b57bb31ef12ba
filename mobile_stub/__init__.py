"""What a phone or a till sees of checkin-offers, and a demo built on it.

- `client`: a typed client of the v1 HTTP API over an injectable transport (the tests use it);
- `phone`: a simulated phone whose location fixes behave like a real one's;
- `city`: central Helsinki's venues and walking network, from OpenStreetMap (`data/`, ODbL);
- `demo` and `personas`: the demo that `make run` loads and `make demo` plays.

Nothing here imports the service's own packages: it only speaks HTTP.
"""
