// The searchable country picker: "Any" plus every country, with flags served by this site.

import { KEYS, load, save } from "./storage.js";
import { $, flagUrl } from "./ui.js";

export const ANY = "any";

const ANY_NAME = "Any country";

export class CountryPicker {
  constructor(countries, onChange) {
    this.countries = countries;
    this.names = new Map(countries.map((country) => [country.code, country.name]));
    this.onChange = onChange;
    this.options = $("country-options");
    this.search = $("country-search");
    this.count = $("country-count");
    const saved = load(KEYS.country);
    this.selected = saved !== null && (saved === ANY || this.names.has(saved)) ? saved : ANY;
    this.rows = [];
  }

  render() {
    this.rows = [{ code: ANY, name: ANY_NAME }, ...this.countries].map((country) => this.renderRow(country));
    this.options.append(...this.rows.map((row) => row.label));
    this.search.addEventListener("input", () => this.filter(this.search.value));
    this.search.addEventListener("keydown", (event) => this.onSearchKey(event));
    this.filter("");
    this.showSelected();
  }

  renderRow(country) {
    const label = document.createElement("label");
    label.className = "country-option";
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "country";
    input.value = country.code;
    input.checked = country.code === this.selected;
    input.addEventListener("change", () => this.select(country.code));
    const flag = document.createElement("img");
    flag.className = "flag";
    flag.alt = "";
    flag.width = 24;
    flag.height = 18;
    flag.loading = "lazy";
    flag.src = country.code === ANY ? flagUrl("XX") : flagUrl(country.code);
    const name = document.createElement("span");
    name.textContent = country.name;
    label.append(input, flag, name);
    return { code: country.code, key: normalize(`${country.name} ${country.code}`), label, input };
  }

  filter(query) {
    const wanted = normalize(query.trim());
    let shown = 0;
    for (const row of this.rows) {
      const visible = row.code === ANY || wanted === "" || row.key.includes(wanted);
      row.label.hidden = !visible;
      shown += visible && row.code !== ANY ? 1 : 0;
    }
    this.count.textContent = wanted === "" ? "" : `${shown} ${shown === 1 ? "country matches" : "countries match"}`;
  }

  // Enter in the search box picks the first matching country, so the keyboard path is short.
  onSearchKey(event) {
    if (event.key !== "Enter") {
      return;
    }
    event.preventDefault();
    const first = this.rows.find((row) => row.code !== ANY && !row.label.hidden);
    if (first !== undefined && this.search.value.trim() !== "") {
      first.input.checked = true;
      this.select(first.code);
      first.input.focus();
    }
  }

  select(code) {
    this.selected = code;
    save(KEYS.country, code);
    this.showSelected();
    this.onChange(code);
  }

  showSelected() {
    $("selected-flag").src = this.selected === ANY ? flagUrl("XX") : flagUrl(this.selected);
    $("selected-name").textContent = this.nameOf(this.selected);
  }

  nameOf(code) {
    if (code === ANY) {
      return ANY_NAME;
    }
    return this.names.get(code) ?? "an unknown country";
  }
}

function normalize(text) {
  return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
}
