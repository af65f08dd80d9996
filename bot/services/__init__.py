"""The service layer: every read and write of the application database goes through here.

Actions, channels, the CLI and the staff pages call these functions with a session from
:func:`bot.db.session.unit_of_work`; none of them builds queries of its own.
"""
