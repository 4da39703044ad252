// Entry point: load the config and the country list, then hand the page to the controller.

import { App } from "./app.js";
import { ageConfirmed } from "./gate.js";
import { $ } from "./ui.js";

async function fetchJson(url) {
  const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!response.ok) {
    throw new Error(`${url} returned HTTP ${response.status}`);
  }
  return response.json();
}

async function main() {
  const [config, countries] = await Promise.all([fetchJson("/config.json"), fetchJson("/static/vendor/countries.json")]);
  if (typeof window.io !== "function") {
    throw new Error("the Socket.IO client did not load");
  }
  const app = new App(config, countries);
  app.setUp();
  app.showFirstScreen(ageConfirmed());
}

main().catch((error) => {
  const heading = $("screen-loading").querySelector("h1");
  heading.textContent = "Calln could not start. Reload the page to try again.";
  console.warn("calln: start failed", error?.message);
});
