// Choices kept in this browser's localStorage. Nothing here is sent to a server, except the
// Hide my IP choice, which the socket's auth carries to the gateway.
// Storage can be unavailable (some private modes); then choices last for this page only.

const memory = new Map();

export const KEYS = Object.freeze({
  ageConfirmed: "calln_age_confirmed",
  consent: "calln_consent",
  hideIp: "calln_hide_ip",
  autoNext: "calln_auto_next",
  widen: "calln_widen",
  country: "calln_country",
});

export function load(key) {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return memory.has(key) ? memory.get(key) : null;
  }
}

export function save(key, value) {
  memory.set(key, value);
  try {
    window.localStorage.setItem(key, value);
  } catch {
    // Storage is unavailable; the in-memory copy keeps the choice until the page closes.
  }
}

export function loadFlag(key) {
  return load(key) === "1";
}

export function saveFlag(key, on) {
  save(key, on ? "1" : "0");
}
