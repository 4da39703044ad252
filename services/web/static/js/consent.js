// The consent banner. The choice is remembered; until Accept, nothing analytic is loaded or sent.

import { KEYS, load, save } from "./storage.js";
import { $ } from "./ui.js";

export const ACCEPTED = "accepted";
export const DECLINED = "declined";

export class Consent {
  constructor() {
    const saved = load(KEYS.consent);
    this.choice = saved === ACCEPTED || saved === DECLINED ? saved : null;
    this.listeners = [];
  }

  get accepted() {
    return this.choice === ACCEPTED;
  }

  // Call `listener(choice)` whenever the person chooses, and once now if a choice is remembered.
  onChoice(listener) {
    this.listeners.push(listener);
    if (this.choice !== null) {
      listener(this.choice);
    }
  }

  setUp() {
    const banner = $("consent-banner");
    $("consent-accept").addEventListener("click", () => this.choose(ACCEPTED));
    $("consent-decline").addEventListener("click", () => this.choose(DECLINED));
    $("consent-open").addEventListener("click", () => {
      banner.hidden = false;
      $("consent-accept").focus();
    });
    banner.hidden = this.choice !== null;
  }

  choose(choice) {
    const changed = choice !== this.choice;
    this.choice = choice;
    save(KEYS.consent, choice);
    $("consent-banner").hidden = true;
    if (changed) {
      for (const listener of this.listeners) {
        listener(choice);
      }
    }
  }
}
