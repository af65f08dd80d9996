"""The website side of the assistant: the embeddable chat widget and a demo clinic page.

* ``static/widget.js`` and ``static/widget.css`` are served by :mod:`bot.channels.widget` at
  ``/webhooks/widget/widget.js`` and ``/webhooks/widget/widget.css``.
* :mod:`bot.web.demo` serves ``templates/demo.html``, a demo clinic page that embeds the widget.
"""
