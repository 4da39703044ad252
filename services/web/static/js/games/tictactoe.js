// Tic-tac-toe rules, shared by both sides: each side validates every move, its own and its partner's.

export const X = "X";
export const O = "O";

const LINES = [
  [0, 1, 2], [3, 4, 5], [6, 7, 8],
  [0, 3, 6], [1, 4, 7], [2, 5, 8],
  [0, 4, 8], [2, 4, 6],
];

export class TicTacToe {
  constructor() {
    this.board = Array(9).fill(null);
    this.turn = X;
    this.moves = 0;
  }

  // Return null when `symbol` may play `cell` now, else the reason it may not.
  check(cell, symbol) {
    if (!Number.isInteger(cell) || cell < 0 || cell > 8) {
      return "that cell does not exist";
    }
    if (this.outcome() !== null) {
      return "the game is over";
    }
    if (symbol !== this.turn) {
      return "it is not that player's turn";
    }
    if (this.board[cell] !== null) {
      return "that cell is taken";
    }
    return null;
  }

  // Play a move after `check`; throws on an invalid move so a bug cannot corrupt the board silently.
  play(cell, symbol) {
    const problem = this.check(cell, symbol);
    if (problem !== null) {
      throw new Error(`invalid move ${cell} by ${symbol}: ${problem}`);
    }
    this.board[cell] = symbol;
    this.moves += 1;
    this.turn = symbol === X ? O : X;
  }

  // {winner, line} once someone has three in a row, {winner: null} on a full board, null while playing.
  outcome() {
    for (const line of LINES) {
      const [a, b, c] = line;
      if (this.board[a] !== null && this.board[a] === this.board[b] && this.board[a] === this.board[c]) {
        return { winner: this.board[a], line };
      }
    }
    return this.moves === 9 ? { winner: null, line: [] } : null;
  }
}
