"""Custom actions for the Rasa action server, split by concern.

Each action is thin: it reads slots, calls one function in :mod:`bot` (the service layer) and
maps the result to response names and events.
"""
