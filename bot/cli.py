"""The ``bot`` command: database migrations, running the product, and staff look-ups.

Examples::

    bot db upgrade
    bot run
    bot intake list
    bot handoffs list
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _db_upgrade(_args: argparse.Namespace) -> int:
    from bot.db import migrate
    from bot.settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.database_url)
    return 0


def _run(args: argparse.Namespace) -> int:
    from bot.run import run_all

    return run_all(with_demo=not args.no_demo)


def _intake_list(_args: argparse.Namespace) -> int:
    from bot.db.session import unit_of_work
    from bot.services import intake

    with unit_of_work() as session:
        rows = intake.partial_intakes(session)
        print(f"{len(rows)} intake(s) started but not submitted")
        for conversation in rows:
            answered = len(intake.latest_answers(session, conversation.sender_id))
            last = f"{conversation.last_activity_at:%Y-%m-%d %H:%M}"
            print(f"  conversation {conversation.id}  {conversation.channel.value:<6} "
                  f"{answered:>2} answers  last active {last}")
    return 0


def _handoffs_list(args: argparse.Namespace) -> int:
    from bot.db.session import unit_of_work
    from bot.services import handoffs

    with unit_of_work() as session:
        queue = handoffs.open_queue(session)
        print(f"{len(queue)} open handoff(s)")
        for handoff in queue:
            print(f"  #{handoff.id} {handoff.priority.value:<8} {handoff.reason.value:<18} "
                  f"conversation {handoff.conversation_id}  {handoff.created_at:%Y-%m-%d %H:%M}")
            if args.details:
                print("    " + json.dumps(handoff.summary, indent=2).replace("\n", "\n    "))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="bot", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database migrations")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply every migration").set_defaults(func=_db_upgrade)

    run = commands.add_parser("run", help="run the action server, Rasa and the demo page")
    run.add_argument("--no-demo", action="store_true", help="do not serve the demo page")
    run.set_defaults(func=_run)

    intake_cmd = commands.add_parser("intake", help="website intakes")
    intake_commands = intake_cmd.add_subparsers(dest="intake_command", required=True)
    intake_commands.add_parser("list", help="intakes started but not submitted").set_defaults(
        func=_intake_list
    )

    handoff_cmd = commands.add_parser("handoffs", help="the staff handoff queue")
    handoff_commands = handoff_cmd.add_subparsers(dest="handoff_command", required=True)
    listing = handoff_commands.add_parser("list", help="open handoffs, most urgent first")
    listing.add_argument("--details", action="store_true", help="print each summary (PHI)")
    listing.set_defaults(func=_handoffs_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bot`` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
