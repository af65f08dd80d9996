"""Staff alerts: a signed webhook and/or email when a conversation needs staff (crisis first).

See :mod:`bot.alerts.notifier`; :mod:`bot.alerts.receiver` is a local webhook endpoint for the
demo.
"""

from bot.alerts.notifier import Alert, Delivery, deliver

__all__ = ["Alert", "Delivery", "deliver"]
