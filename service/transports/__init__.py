"""Transports: one interface to send a message (``send(message) -> Receipt``): SMS, email.

May import the base modules only; never the domain packages, tasks, web or cli."""
