"""Shape checks of `game` events before the gateway relays them."""

import pytest

from services.signalling.games import MAX_CARD_INDEX, MAX_SEED, validate_game

CALL = "call_1"


@pytest.mark.parametrize(
    "payload",
    [
        {"call_id": CALL, "game": "tictactoe", "action": "start"},
        {"call_id": CALL, "game": "tictactoe", "action": "move", "cell": 0},
        {"call_id": CALL, "game": "tictactoe", "action": "move", "cell": 8},
        {"call_id": CALL, "game": "icebreaker", "action": "start", "seed": 0},
        {"call_id": CALL, "game": "icebreaker", "action": "start", "seed": MAX_SEED},
        {"call_id": CALL, "game": "icebreaker", "action": "draw", "index": 1},
        {"call_id": CALL, "game": "icebreaker", "action": "draw", "index": MAX_CARD_INDEX},
    ],
)
def test_valid_event_passes_unchanged(payload: dict[str, object]) -> None:
    assert validate_game(payload) == payload


def test_result_is_a_new_dict() -> None:
    payload = {"call_id": CALL, "game": "tictactoe", "action": "move", "cell": 4}

    result = validate_game(payload)

    assert result is not payload


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (None, "must be an object"),
        (["tictactoe"], "must be an object"),
        ({"game": "tictactoe", "action": "start"}, "call_id"),
        ({"call_id": "bad id!", "game": "tictactoe", "action": "start"}, "call_id"),
        ({"call_id": "x" * 65, "game": "tictactoe", "action": "start"}, "call_id"),
        ({"call_id": CALL, "game": "chess", "action": "start"}, "game.game"),
        ({"call_id": CALL, "game": 1, "action": "start"}, "game.game"),
        ({"call_id": CALL, "game": "tictactoe", "action": "draw"}, "game.action"),
        ({"call_id": CALL, "game": "icebreaker", "action": "move", "cell": 1}, "game.action"),
        ({"call_id": CALL, "game": "tictactoe", "action": "move"}, "game.cell"),
        ({"call_id": CALL, "game": "tictactoe", "action": "move", "cell": 9}, "outside 0..8"),
        ({"call_id": CALL, "game": "tictactoe", "action": "move", "cell": -1}, "outside 0..8"),
        ({"call_id": CALL, "game": "tictactoe", "action": "move", "cell": "4"}, "game.cell"),
        ({"call_id": CALL, "game": "tictactoe", "action": "move", "cell": 4.0}, "game.cell"),
        ({"call_id": CALL, "game": "tictactoe", "action": "move", "cell": True}, "game.cell"),
        ({"call_id": CALL, "game": "tictactoe", "action": "start", "cell": 1}, "does not take"),
        ({"call_id": CALL, "game": "tictactoe", "action": "move", "cell": 1, "text": "hi"}, "does not take"),
        ({"call_id": CALL, "game": "icebreaker", "action": "start"}, "game.seed"),
        ({"call_id": CALL, "game": "icebreaker", "action": "start", "seed": MAX_SEED + 1}, "outside"),
        ({"call_id": CALL, "game": "icebreaker", "action": "start", "seed": -5}, "outside"),
        ({"call_id": CALL, "game": "icebreaker", "action": "draw", "index": MAX_CARD_INDEX + 1}, "outside"),
        ({"call_id": CALL, "game": "icebreaker", "action": "draw", "index": None}, "game.index"),
    ],
)
def test_invalid_event_raises(payload: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_game(payload)


def test_huge_number_message_stays_short() -> None:
    payload = {"call_id": CALL, "game": "icebreaker", "action": "start", "seed": 10**4000}

    with pytest.raises(ValueError) as caught:
        validate_game(payload)

    assert len(str(caught.value)) < 120


def test_many_extra_keys_message_stays_short() -> None:
    payload: dict[str, object] = {"call_id": CALL, "game": "tictactoe", "action": "start"}
    payload.update({f"key{index}": index for index in range(500)})

    with pytest.raises(ValueError) as caught:
        validate_game(payload)

    assert len(str(caught.value)) < 200
