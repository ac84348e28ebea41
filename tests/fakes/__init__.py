"""Test doubles for the outside world only: a Twilio-compatible HTTP API and an SMTP server.

Each is a plain context manager (``twilio_server()``, ``twilio_server_process()``,
``smtp_server()``) so any test package, the benchmark included, can start one.
"""
