"""Rasa input channels: the website chat widget and a hardened REST channel.

* :mod:`bot.channels.text` cleans every user message before Rasa sees it.
* :mod:`bot.channels.common` holds what both channels share: safe JSON bodies, domain responses
  by name, and message processing that answers a failure with ``utter_technical_problem``.
* :mod:`bot.channels.rest` is ``bot.channels.rest.SafeRestInput`` (``/webhooks/rest/webhook``).
* :mod:`bot.channels.widget` is ``bot.channels.widget.WidgetInput`` (``/webhooks/widget/...``).
"""
