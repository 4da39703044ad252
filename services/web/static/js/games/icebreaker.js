// Icebreaker cards: both sides shuffle the same deck from a shared seed, so a card index means the same card.

export const CARDS = [
  "What is the best thing that happened to you this week?",
  "If you could live anywhere for a year, where would it be?",
  "What is a skill you would love to learn?",
  "What song have you had on repeat lately?",
  "What is the most beautiful place you have ever been?",
  "Which food could you eat every day?",
  "What is a small thing that always makes your day better?",
  "What was your favourite game as a child?",
  "If you could have dinner with anyone, living or not, who would it be?",
  "What is a book, film or show you recommend to everyone?",
  "Are you a morning person or a night owl?",
  "What is something you are proud of but rarely talk about?",
  "What would your perfect weekend look like?",
  "What is the strangest job you have had or would like to have?",
  "Which language would you like to speak fluently?",
  "What is a tradition from where you live that visitors find surprising?",
  "Mountains or sea?",
  "What is the best advice anyone has given you?",
  "If you had a free afternoon right now, what would you do?",
  "What is a hobby you picked up recently?",
  "What does a perfect cup of tea or coffee look like to you?",
  "Which fictional world would you like to visit?",
  "What is something that instantly makes you laugh?",
  "What was the last thing you learned that surprised you?",
  "If you could master one instrument overnight, which would it be?",
  "What is your favourite season, and why?",
  "What is a place in your town that you love?",
  "Cats, dogs, or neither?",
  "What is the best gift you have ever received?",
  "If you could time-travel once, where and when would you go?",
  "What is a dish you cook well?",
  "Which sport could you watch for hours?",
  "What is a goal you have for this year?",
  "What was the highlight of your last holiday?",
  "What app on your phone do you use the most?",
  "What is the kindest thing a stranger has done for you?",
  "If you started a small business, what would it sell?",
  "What is a word in your language that you wish English had?",
  "What is something you changed your mind about?",
  "What is the best concert or live event you have been to?",
];

// The largest seed and index the gateway accepts; see services/signalling/games.py.
export const MAX_SEED = 2 ** 31 - 1;

export function newSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0] % (MAX_SEED + 1);
}

// mulberry32: a small, fast 32-bit generator; both browsers compute the same sequence from one seed.
function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Return the deck order for a seed: a Fisher-Yates shuffle of the card indices.
export function shuffledDeck(seed, size = CARDS.length) {
  const random = mulberry32(seed);
  const order = Array.from({ length: size }, (_, index) => index);
  for (let i = size - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

export class IcebreakerDeck {
  constructor(seed) {
    this.seed = seed;
    this.order = shuffledDeck(seed);
    this.index = 0;
  }

  get size() {
    return this.order.length;
  }

  get card() {
    return CARDS[this.order[this.index]];
  }

  get hasNext() {
    return this.index + 1 < this.order.length;
  }

  // Move to `index` if it lies ahead; both sides drawing at once both land on the same card.
  moveTo(index) {
    if (!Number.isInteger(index) || index <= this.index || index >= this.order.length) {
      return false;
    }
    this.index = index;
    return true;
  }
}
