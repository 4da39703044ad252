"""The page's game rules (static/js/games/), run in Node: both browsers must reach the same result."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from services.signalling.games import MAX_CARD_INDEX
from services.signalling.games import MAX_SEED as GATEWAY_MAX_SEED

GAMES_DIR = Path(__file__).resolve().parents[2] / "services" / "web" / "static" / "js" / "games"

NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed; these tests run the page's game rules in Node.js"
)

# Node 20 runs ES modules from stdin with --input-type=module; `crypto` is a global there as in browsers.
SCRIPT_HEADER = f"""
import {{ TicTacToe, X, O }} from "{(GAMES_DIR / 'tictactoe.js').as_uri()}";
import {{ IcebreakerDeck, shuffledDeck, CARDS, MAX_SEED, newSeed }} from "{(GAMES_DIR / 'icebreaker.js').as_uri()}";
const out = {{}};
"""


def run_node(body: str) -> dict[str, object]:
    assert NODE is not None
    script = SCRIPT_HEADER + body + "\nconsole.log(JSON.stringify(out));\n"
    result = subprocess.run(
        [NODE, "--input-type=module", "-"], input=script, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_tictactoe_row_wins() -> None:
    out = run_node("""
    const game = new TicTacToe();
    for (const [cell, mark] of [[0, X], [3, O], [1, X], [4, O], [2, X]]) { game.play(cell, mark); }
    out.outcome = game.outcome();
    out.after = game.check(5, O);
    """)

    assert out["outcome"] == {"winner": "X", "line": [0, 1, 2]}
    assert out["after"] == "the game is over"


def test_tictactoe_diagonal_wins_for_o() -> None:
    out = run_node("""
    const game = new TicTacToe();
    for (const [cell, mark] of [[1, X], [0, O], [2, X], [4, O], [3, X], [8, O]]) { game.play(cell, mark); }
    out.outcome = game.outcome();
    """)

    assert out["outcome"] == {"winner": "O", "line": [0, 4, 8]}


def test_tictactoe_full_board_is_draw() -> None:
    out = run_node("""
    const game = new TicTacToe();
    const moves = [[0, X], [1, O], [2, X], [4, O], [3, X], [5, O], [7, X], [6, O], [8, X]];
    for (const [cell, mark] of moves) { game.play(cell, mark); }
    out.outcome = game.outcome();
    """)

    assert out["outcome"] == {"winner": None, "line": []}


def test_tictactoe_rejects_bad_moves() -> None:
    out = run_node("""
    const game = new TicTacToe();
    out.o_first = game.check(0, O);
    game.play(4, X);
    out.taken = game.check(4, O);
    out.twice = game.check(0, X);
    out.outside = game.check(9, O);
    out.fraction = game.check(1.5, O);
    out.ok = game.check(0, O);
    try { game.play(4, O); out.threw = false; } catch (error) { out.threw = true; }
    """)

    assert out["o_first"] == "it is not that player's turn"
    assert out["taken"] == "that cell is taken"
    assert out["twice"] == "it is not that player's turn"
    assert out["outside"] == "that cell does not exist"
    assert out["fraction"] == "that cell does not exist"
    assert out["ok"] is None
    assert out["threw"] is True


def test_deck_order_follows_seed() -> None:
    out = run_node("""
    out.first = shuffledDeck(12345);
    out.again = shuffledDeck(12345);
    out.other = shuffledDeck(54321);
    out.size = CARDS.length;
    out.max = shuffledDeck(MAX_SEED);
    """)

    assert out["first"] == out["again"]
    assert out["first"] != out["other"]
    assert sorted(out["first"]) == list(range(int(out["size"])))
    assert sorted(out["max"]) == list(range(int(out["size"])))


def test_deck_draws_only_forward() -> None:
    out = run_node("""
    const deck = new IcebreakerDeck(7);
    out.first = deck.card;
    out.forward = deck.moveTo(1);
    out.same = deck.moveTo(1);
    out.back = deck.moveTo(0);
    out.past_end = deck.moveTo(deck.size);
    out.index = deck.index;
    out.second = deck.card;
    out.expected_second = CARDS[shuffledDeck(7)[1]];
    """)

    assert out["forward"] is True
    assert out["same"] is False
    assert out["back"] is False
    assert out["past_end"] is False
    assert out["index"] == 1
    assert out["second"] == out["expected_second"]


def test_new_seed_within_gateway_bounds() -> None:
    out = run_node("""
    out.seeds = Array.from({ length: 200 }, () => newSeed());
    out.max = MAX_SEED;
    """)

    seeds = out["seeds"]
    assert isinstance(seeds, list)
    assert all(isinstance(seed, int) and 0 <= seed <= int(out["max"]) for seed in seeds)
    assert out["max"] == GATEWAY_MAX_SEED


def test_deck_fits_gateway_index_limit() -> None:
    out = run_node("out.size = CARDS.length;")

    assert int(out["size"]) - 1 <= MAX_CARD_INDEX
