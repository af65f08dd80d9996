"""Carrier keywords in inbound texts: opt-out, opt-in and help.

US carriers (CTIA's messaging principles) and Twilio's default and Advanced Opt-Out handling
reserve a few words:

- opt-out: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, and Twilio's OPTOUT and REVOKE;
- opt-in: START, UNSTOP, and YES;
- help: HELP, INFO.

Twilio still forwards these messages to the webhook, and the product keeps its own opt-out
ledger, so the channel classifies every inbound text with :func:`classify`.

**Only a whole message is a keyword.** The message is trimmed, compared without regard to case,
and may end in punctuation ("STOP.", "stop!"), but it must be the keyword and nothing else. This
is what Twilio does ("STOP PLEASE" and "PLEASE CANCEL" do not opt out) and, for this product,
it is a safety property as well as a compliance one. "I want it all to end" contains END;
classified by word it would silently unsubscribe a patient in crisis instead of reaching the
crisis path. A sentence that merely contains a keyword ("please don't stop texting me",
"stop please") is therefore :attr:`Keyword.NONE`, and goes through the normal conversation (and
the crisis check) like any other text; the conversation can ask whether the person wants to
stop.

The classification says nothing about crisis. The channel must still run the crisis check on
every message, keywords included: a bare "END" or "HELP" from a patient is honoured as the
carrier keyword, and is still screened.

**YES is an opt-in only for someone who is opted out.** To a subscribed patient, "yes" is the
answer to the last question ("Can we call you today?"), and must reach the conversation. Hence
:func:`classify` takes ``opted_out``. START and UNSTOP are explicit and are opt-ins either way
(for a subscribed patient, a harmless re-confirmation).
"""

from __future__ import annotations

import enum
import unicodedata


class Keyword(enum.Enum):
    """What a carrier keyword asks for; :attr:`NONE` for an ordinary message."""

    NONE = "none"
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


OPT_OUT_KEYWORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"}
)
OPT_IN_KEYWORDS = frozenset({"start", "unstop"})
# YES opts back in only when the person is opted out (see the module docstring).
OPT_IN_WHEN_OPTED_OUT = frozenset({"yes"})
HELP_KEYWORDS = frozenset({"help", "info"})


def _is_ignorable_edge(char: str) -> bool:
    # Punctuation (P*) ends a keyword ("STOP.", "stop!!"); format characters (Cf, e.g. a
    # zero-width space or byte-order mark some phones append) are invisible to the sender.
    category = unicodedata.category(char)
    return category[0] == "P" or category == "Cf"


def normalize(text: str) -> str:
    """The form of a message that is compared with the keywords.

    Args:
        text: The inbound message body.

    Returns:
        The text trimmed of whitespace, of invisible format characters at either end and of
        trailing punctuation, in case-folded form: ``"  Stop!! "`` becomes ``"stop"``. Inner
        text, leading punctuation and emoji are kept, so they still prevent a match.
    """
    folded = text.strip().casefold()
    start, end = 0, len(folded)
    while start < end and unicodedata.category(folded[start]) == "Cf":
        start += 1
    while end > start and (folded[end - 1].isspace() or _is_ignorable_edge(folded[end - 1])):
        end -= 1
    return folded[start:end].strip()


def classify(text: str | None, *, opted_out: bool) -> Keyword:
    """Classify an inbound text as a carrier keyword, or as an ordinary message.

    Args:
        text: The inbound message body (``None`` or empty for a media-only message).
        opted_out: Whether the sender is opted out in the product's ledger right now. It
            decides whether "yes" is an opt-in or an answer.

    Returns:
        :attr:`Keyword.OPT_OUT`, :attr:`Keyword.OPT_IN` or :attr:`Keyword.HELP` when the whole
        message is that keyword; :attr:`Keyword.NONE` otherwise, including sentences that
        contain one ("I want it all to end", "stop please").
    """
    if not text:
        return Keyword.NONE
    word = normalize(text)
    if word in OPT_OUT_KEYWORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_KEYWORDS or (opted_out and word in OPT_IN_WHEN_OPTED_OUT):
        return Keyword.OPT_IN
    if word in HELP_KEYWORDS:
        return Keyword.HELP
    return Keyword.NONE
