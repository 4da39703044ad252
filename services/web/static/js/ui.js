// Screens, the status line and small formatting helpers shared by the other modules.

const SCREENS = ["loading", "gate", "start", "waiting", "call", "ended", "banned"];

let current = "loading";

export function $(id) {
  const element = document.getElementById(id);
  if (element === null) {
    throw new Error(`page element #${id} is missing`);
  }
  return element;
}

export function currentScreen() {
  return current;
}

// Show one screen, hide the others, and move focus to its heading for keyboard and screen-reader users.
export function showScreen(name) {
  if (!SCREENS.includes(name)) {
    throw new Error(`unknown screen ${name}`);
  }
  for (const screen of SCREENS) {
    $(`screen-${screen}`).hidden = screen !== name;
  }
  const changed = current !== name;
  current = name;
  document.body.dataset.screen = name;
  const section = $(`screen-${name}`);
  document.title = `${section.dataset.title} · Calln`;
  if (changed) {
    const heading = section.querySelector("h1");
    heading?.focus({ preventScroll: false });
  }
}

export function setStatus(text) {
  $("status-line").textContent = text;
}

export function formatDuration(totalSeconds) {
  const seconds = Math.max(0, Math.floor(totalSeconds));
  const minutes = Math.floor(seconds / 60);
  const rest = String(seconds % 60).padStart(2, "0");
  if (minutes < 60) {
    return `${minutes}:${rest}`;
  }
  const hours = Math.floor(minutes / 60);
  return `${hours}:${String(minutes % 60).padStart(2, "0")}:${rest}`;
}

const COUNTRY_CODE = /^[A-Z]{2}$/;

// The flag of an ISO 3166 alpha-2 code; a globe for "any", XX (unknown) or anything malformed.
export const GLOBE_URL = "/static/globe.svg";

export function flagUrl(code) {
  if (typeof code !== "string" || !COUNTRY_CODE.test(code) || code === "XX") {
    return GLOBE_URL;
  }
  return `/static/vendor/flags/${code.toLowerCase()}.svg`;
}

// A ticking clock shown in an element as m:ss, counted from `start()`.
export class Stopwatch {
  constructor(element) {
    this.element = element;
    this.startedAt = 0;
    this.timer = 0;
  }

  start() {
    this.stop();
    this.startedAt = performance.now();
    this.render();
    this.timer = window.setInterval(() => this.render(), 1000);
  }

  stop() {
    window.clearInterval(this.timer);
    this.timer = 0;
  }

  get running() {
    return this.timer !== 0;
  }

  render() {
    this.element.textContent = formatDuration((performance.now() - this.startedAt) / 1000);
  }
}
