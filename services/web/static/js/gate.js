// The 18+ gate: a confirm step remembered in localStorage. Nothing is sent to a server.

import { KEYS, loadFlag, saveFlag } from "./storage.js";
import { $ } from "./ui.js";

export function ageConfirmed() {
  return loadFlag(KEYS.ageConfirmed);
}

// Wire the gate form; `onConfirmed` runs once the person confirms.
export function setUpGate(onConfirmed) {
  const checkbox = $("gate-confirm");
  const button = $("gate-continue");

  checkbox.addEventListener("change", () => {
    button.disabled = !checkbox.checked;
  });
  $("gate-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!checkbox.checked) {
      return;
    }
    saveFlag(KEYS.ageConfirmed, true);
    onConfirmed();
  });
}
