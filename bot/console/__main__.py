"""``python -m bot.console --port 8030``: run the staff console on the loopback interface.

It reads the project's settings (``bot.settings``): the same database as the actions and
Rasa's HTTP API at ``BOT_RASA_URL`` with ``BOT_RASA_API_TOKEN``. Put it behind a TLS-terminating
proxy to serve it beyond this machine (then set ``BOT_CONSOLE_SECURE_COOKIES=true``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

DEFAULT_PORT = 8030


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and serve the console until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m bot.console",
                                     description="Run the staff console.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1, this machine only)")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")

    from bot.console.app import create_app

    app = create_app()
    # One worker, no auto-reload, no access log: request paths carry ids of patients' handoffs.
    app.run(host=args.host, port=args.port, workers=1, access_log=False, debug=False,
            auto_reload=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
