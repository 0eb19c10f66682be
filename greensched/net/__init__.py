"""Green networking: sockets (`socket`), DNS (`dns`); select/selectors live in `net/select.py`."""
