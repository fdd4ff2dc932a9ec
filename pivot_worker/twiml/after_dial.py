"""What happens after an answered ``<Dial>``: Kazoo transfers the caller back to a pivot node.

Kazoo's dial modules (``cf_resources``, ``cf_user``, ``cf_device``, ``cf_ring_group``) stop the
callflow once a bridge succeeded, so nothing after the dial node runs. Twilio instead requests
the Dial ``action`` (``DialCallStatus=completed``) or runs the verbs after ``<Dial>``. With
``PIVOT_AFTER_DIAL_EXTENSION`` set, each bridging Dial's flow first sets:

* the call's ``Custom-Application-Vars.pivot_after_dial`` (``set_variables``) to a signed
  :data:`~.continuation.AFTER_DIAL` token naming what comes next, or to ``-`` when nothing does;
* ``after_bridge`` ``transfer`` to that extension, which Kazoo turns into FreeSWITCH's
  ``transfer_after_bridge``: when the called party hangs up, the caller is routed to the
  extension's callflow.

The operator gives that extension, in each account, a callflow whose only node is a ``pivot``
to :data:`AFTER_DIAL_URL`. The worker recognises that URL and takes the continuation from the
call's variables instead of the URL (:func:`open_after_dial`), so the request goes on exactly as
a nested pivot node's would, and no worker keeps state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .continuation import RESUME, Continuation, open_token

AFTER_DIAL_HOST = "after-dial.pivot.invalid"
AFTER_DIAL_URL = f"https://{AFTER_DIAL_HOST}/"
"""The ``voice_url`` of the operator's after-dial callflow. ``.invalid`` (RFC 6761) never resolves,
so no developer URL can be mistaken for it."""

CALL_VAR = "pivot_after_dial"
"""The ``Custom-Application-Vars`` key holding the continuation."""

NOTHING_FOLLOWS = "-"
"""The variable's value for a Dial after which the call ends (it also disarms an earlier one)."""

EXTENSION = re.compile(r"[A-Za-z0-9*#+_.-]{1,64}")
"""What ``PIVOT_AFTER_DIAL_EXTENSION`` may be: a dialplan extension, without FreeSWITCH's
``:``-separated dialplan and context parts (use ``fullmatch``)."""


_MENTIONS_HOST = re.compile(re.escape(AFTER_DIAL_HOST), re.IGNORECASE)


def is_after_dial(voice_uri: str) -> bool:
    """True for a request from the operator's after-dial callflow.

    Every request asks this, so a URL that does not even mention the host is answered without
    parsing it.
    """
    if _MENTIONS_HOST.search(voice_uri) is None:
        return False
    try:
        return urlsplit(voice_uri).hostname == AFTER_DIAL_HOST
    except ValueError:
        return False


def _pending(call: Mapping[str, Any]) -> str | None:
    """The token a Dial left in the call's variables, or ``None`` (none, or :data:`NOTHING_FOLLOWS`)."""
    cavs = call.get("Custom-Application-Vars")
    value = cavs.get(CALL_VAR) if isinstance(cavs, Mapping) else None
    return value if isinstance(value, str) and value not in ("", NOTHING_FOLLOWS) else None


def open_after_dial(call: Mapping[str, Any], *, key: bytes) -> Continuation:
    """The continuation an answered Dial left in the call's variables.

    No variable (the transfer was armed by a flow the worker did not make) or
    :data:`NOTHING_FOLLOWS` gives an empty ``resume``: the call hangs up, as Twilio's would after
    a Dial with no action and no verbs after it. A bad token raises
    ``PivotError(invalid_continuation)``.
    """
    token = _pending(call)
    if token is None:
        return Continuation(call_id=str(call.get("Call-ID", "")), iteration=1, kind=RESUME)
    return open_token(token, key=key)


def after_dial_disarmed(call: Mapping[str, Any]) -> dict[str, str]:
    """The variable change that disarms a pending continuation (``{}`` when none is pending).

    Every flow the worker publishes starts with it while one is pending, so a later bridge in the
    call (a Kazoo JSON flow's own dial, say) that still triggers Kazoo's transfer finds
    :data:`NOTHING_FOLLOWS` and hangs up, as Kazoo would have, instead of replaying an old Dial's
    action. A Dial in the new flow then arms its own.
    """
    return {} if _pending(call) is None else {CALL_VAR: NOTHING_FOLLOWS}
