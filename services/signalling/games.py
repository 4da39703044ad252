"""Shape check for `game` events, which the gateway relays between the two sides of a call.

Accepted payloads (the page's games.js sends exactly these):

    {call_id, game: "tictactoe",  action: "start"}
    {call_id, game: "tictactoe",  action: "move", cell: 0..8}
    {call_id, game: "icebreaker", action: "start", seed: 0..2**31-1}
    {call_id, game: "icebreaker", action: "draw", index: 0..MAX_CARD_INDEX}

The gateway checks that call_id names the sender's call and rate-limits the events. Both pages check
the game rules themselves (turn order, a taken cell).
"""

import re
from dataclasses import dataclass

# Same form as every other call_id the gateway hands out.
CALL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

BOARD_CELLS = 9

# An error names at most this many unexpected fields, so a flood of keys cannot flood the error event.
MAX_NAMED_FIELDS = 3

# Seeds fit a signed 32-bit integer, so every JavaScript engine handles them exactly.
MAX_SEED = 2**31 - 1

# The deck has 40 cards today; the bound leaves room for bigger decks without a gateway change.
MAX_CARD_INDEX = 999


@dataclass(frozen=True, slots=True)
class IntField:
    """An integer field an action requires, with its inclusive bounds."""

    name: str
    minimum: int
    maximum: int


# game -> action -> the integer field the action carries (None when it carries none).
ACTIONS: dict[str, dict[str, IntField | None]] = {
    "tictactoe": {
        "start": None,
        "move": IntField("cell", 0, BOARD_CELLS - 1),
    },
    "icebreaker": {
        "start": IntField("seed", 0, MAX_SEED),
        "draw": IntField("index", 0, MAX_CARD_INDEX),
    },
}


def validate_game(data: object) -> dict[str, object]:
    """Return the game event as a new dict of known fields; raise ValueError naming the first problem."""
    if not isinstance(data, dict):
        raise ValueError(f"game payload must be an object, got {type(data).__name__}")

    call_id = data.get("call_id")
    if not isinstance(call_id, str) or not CALL_ID.match(call_id):
        raise ValueError("game.call_id must be a call id string")
    game = data.get("game")
    if not isinstance(game, str) or game not in ACTIONS:
        raise ValueError(f"game.game must be one of {sorted(ACTIONS)}")
    action = data.get("action")
    if not isinstance(action, str) or action not in ACTIONS[game]:
        raise ValueError(f"game.action for {game} must be one of {sorted(ACTIONS[game])}")

    field = ACTIONS[game][action]
    allowed = {"call_id", "game", "action"} | ({field.name} if field else set())
    extra = data.keys() - allowed
    if extra:
        named = sorted(str(key)[:20] for key in extra)[:MAX_NAMED_FIELDS]
        raise ValueError(f"game event {game}.{action} does not take {len(extra)} field(s), e.g. {named}")

    event: dict[str, object] = {"call_id": call_id, "game": game, "action": action}
    if field is not None:
        event[field.name] = _bounded_int(data.get(field.name), f"game.{field.name}", field)
    return event


def _bounded_int(value: object, label: str, field: IntField) -> int:
    # bool is a subclass of int in Python; true/false is not a cell number.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{label} must be an integer from {field.minimum} to {field.maximum}")
    if not field.minimum <= value <= field.maximum:
        raise ValueError(f"{label}={value!r:.20} is outside {field.minimum}..{field.maximum}")
    return value
