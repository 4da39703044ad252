// In-call games kept in sync through `game` events: tic-tac-toe and icebreaker cards.
//
// Wire format (the gateway checks it in services/signalling/games.py):
//   {call_id, game: "tictactoe", action: "start"}            the sender plays X and moves first
//   {call_id, game: "tictactoe", action: "move", cell: 0-8}
//   {call_id, game: "icebreaker", action: "start", seed}     both sides shuffle the deck from the seed
//   {call_id, game: "icebreaker", action: "draw", index}     both sides show card `index` of the deck
// When both sides start the same game at once, the offerer's game wins: the offerer ignores the
// answerer's start while its own game has no move yet, and the answerer always accepts a start.

import { IcebreakerDeck, newSeed } from "./games/icebreaker.js";
import { O, TicTacToe, X } from "./games/tictactoe.js";
import { $ } from "./ui.js";

const TICTACTOE = "tictactoe";
const ICEBREAKER = "icebreaker";

export class Games {
  // `send(payload)` relays a game event; `onPlay(game)` runs when this side starts a game; `note(text)`
  // writes a line into the chat log.
  constructor({ send, onPlay, note }) {
    this.send = send;
    this.onPlay = onPlay;
    this.note = note;
    this.role = null;
    this.active = false;
    this.ttt = null;
    this.deck = null;
    this.cells = [];
  }

  setUp() {
    const board = $("ttt-board");
    for (let cell = 0; cell < 9; cell += 1) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "ttt-cell";
      button.dataset.cell = String(cell);
      button.addEventListener("click", () => this.playLocal(cell));
      board.append(button);
      this.cells.push(button);
    }
    $("ttt-start").addEventListener("click", () => this.startTicTacToe());
    $("cards-start").addEventListener("click", () => this.startIcebreaker());
    $("card-next").addEventListener("click", () => this.drawLocal());
    this.end();
  }

  begin(role) {
    this.role = role;
    this.active = true;
    this.ttt = null;
    this.deck = null;
    this.showPanel(null);
    $("ttt-start").disabled = false;
    $("cards-start").disabled = false;
  }

  end() {
    this.active = false;
    this.ttt = null;
    this.deck = null;
    this.showPanel(null);
    $("ttt-start").disabled = true;
    $("cards-start").disabled = true;
  }

  receive(data) {
    if (!this.active) {
      return;
    }
    if (data.game === TICTACTOE && data.action === "start") {
      this.acceptTicTacToe();
    } else if (data.game === TICTACTOE && data.action === "move") {
      this.playRemote(data.cell);
    } else if (data.game === ICEBREAKER && data.action === "start") {
      this.acceptIcebreaker(data.seed);
    } else if (data.game === ICEBREAKER && data.action === "draw") {
      this.drawRemote(data.index);
    }
  }

  showPanel(name) {
    $("ttt-panel").hidden = name !== TICTACTOE;
    $("cards-panel").hidden = name !== ICEBREAKER;
    $("games-hint").hidden = name !== null;
  }

  // -- tic-tac-toe -------------------------------------------------------------------------

  startTicTacToe() {
    if (!this.active) {
      return;
    }
    this.ttt = { game: new TicTacToe(), mine: X, startedHere: true, rejected: null };
    this.send({ game: TICTACTOE, action: "start" });
    this.onPlay(TICTACTOE);
    this.showPanel(TICTACTOE);
    this.renderBoard();
    this.cells[4].focus();
  }

  acceptTicTacToe() {
    const own = this.ttt;
    if (own !== null && own.startedHere && own.game.moves === 0 && this.role === "offerer") {
      return;
    }
    this.ttt = { game: new TicTacToe(), mine: O, startedHere: false, rejected: null };
    this.note("Your partner started tic-tac-toe.");
    this.showPanel(TICTACTOE);
    this.renderBoard();
  }

  playLocal(cell) {
    const state = this.ttt;
    if (!this.active || state === null || state.game.check(cell, state.mine) !== null) {
      return;
    }
    state.game.play(cell, state.mine);
    state.rejected = null;
    this.send({ game: TICTACTOE, action: "move", cell });
    this.renderBoard();
  }

  playRemote(cell) {
    const state = this.ttt;
    if (state === null) {
      return;
    }
    const theirs = state.mine === X ? O : X;
    const problem = state.game.check(cell, theirs);
    if (problem !== null) {
      // The partner's page validates too, so this means the two boards drifted apart; say so.
      state.rejected = `Ignored a move from your partner: ${problem}.`;
    } else {
      state.game.play(cell, theirs);
      state.rejected = null;
    }
    this.renderBoard();
  }

  renderBoard() {
    const state = this.ttt;
    if (state === null) {
      return;
    }
    const { game, mine } = state;
    const outcome = game.outcome();
    const myTurn = outcome === null && game.turn === mine;
    const winning = new Set(outcome?.line ?? []);
    this.cells.forEach((button, cell) => {
      const mark = game.board[cell];
      button.textContent = mark ?? "";
      button.disabled = !myTurn || mark !== null;
      button.classList.toggle("win", winning.has(cell));
      const row = Math.floor(cell / 3) + 1;
      const column = (cell % 3) + 1;
      button.setAttribute("aria-label", `Row ${row}, column ${column}: ${mark ?? "empty"}`);
    });
    $("ttt-status").textContent = state.rejected ?? statusText(outcome, myTurn, mine);
    $("ttt-start").textContent = outcome === null ? "Tic-tac-toe" : "Play tic-tac-toe again";
  }

  // -- icebreaker cards --------------------------------------------------------------------

  startIcebreaker() {
    if (!this.active) {
      return;
    }
    const seed = newSeed();
    this.deck = new IcebreakerDeck(seed);
    this.deck.startedHere = true;
    this.send({ game: ICEBREAKER, action: "start", seed });
    this.onPlay(ICEBREAKER);
    this.showPanel(ICEBREAKER);
    this.renderCard();
    $("card-next").focus();
  }

  acceptIcebreaker(seed) {
    const own = this.deck;
    if (!Number.isInteger(seed)) {
      return;
    }
    if (own !== null && own.startedHere && own.index === 0 && this.role === "offerer") {
      return;
    }
    this.deck = new IcebreakerDeck(seed);
    this.deck.startedHere = false;
    this.note("Your partner started the icebreaker cards.");
    this.showPanel(ICEBREAKER);
    this.renderCard();
  }

  drawLocal() {
    const deck = this.deck;
    if (!this.active || deck === null || !deck.hasNext) {
      return;
    }
    const index = deck.index + 1;
    deck.moveTo(index);
    this.send({ game: ICEBREAKER, action: "draw", index });
    this.renderCard();
  }

  drawRemote(index) {
    if (this.deck !== null && this.deck.moveTo(index)) {
      this.renderCard();
    }
  }

  renderCard() {
    const deck = this.deck;
    if (deck === null) {
      return;
    }
    $("card-text").textContent = deck.card;
    $("card-count").textContent = `Card ${deck.index + 1} of ${deck.size}`;
    $("card-next").disabled = !deck.hasNext;
    $("card-next").textContent = deck.hasNext ? "Next card" : "Last card";
  }
}

function statusText(outcome, myTurn, mine) {
  if (outcome !== null && outcome.winner === null) {
    return "It's a draw.";
  }
  if (outcome !== null) {
    return outcome.winner === mine ? "You won!" : "Your partner won.";
  }
  return myTurn ? `Your turn. You play ${mine}.` : `Your partner's turn. You play ${mine}.`;
}
