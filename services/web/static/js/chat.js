// The in-call chat: a length counter, a typing indicator, and messages rendered as text, never as HTML.

import { $ } from "./ui.js";

// The counter turns red when this few characters are left.
const NEAR_LIMIT_CHARS = 50;

export class ChatPanel {
  // `send(text)` and `sendTyping()` relay to the partner; `limits` comes from /config.json.
  constructor(limits, { send, sendTyping }) {
    this.maxChars = limits.chat_max_chars;
    this.typingIdleMs = limits.typing_idle_s * 1000;
    this.typingSendIntervalMs = limits.typing_send_interval_s * 1000;
    this.send = send;
    this.sendTyping = sendTyping;
    this.lastTypingSentAt = -Infinity;
    this.typingTimer = 0;
    this.active = false;

    this.log = $("chat-log");
    this.input = $("chat-input");
    this.counter = $("chat-counter");
    this.indicator = $("typing-indicator");
    this.sendButton = $("chat-send");
  }

  setUp() {
    this.input.maxLength = this.maxChars;
    this.input.addEventListener("input", () => this.onInput());
    $("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.updateCounter();
    this.setActive(false);
  }

  setActive(active) {
    this.active = active;
    this.input.disabled = !active;
    this.sendButton.disabled = !active;
  }

  onInput() {
    this.updateCounter();
    const now = performance.now();
    if (this.active && this.input.value !== "" && now - this.lastTypingSentAt >= this.typingSendIntervalMs) {
      this.lastTypingSentAt = now;
      this.sendTyping();
    }
  }

  updateCounter() {
    const length = this.input.value.length;
    this.counter.textContent = `${length} / ${this.maxChars}`;
    this.counter.classList.toggle("near-limit", this.maxChars - length <= NEAR_LIMIT_CHARS);
  }

  submit() {
    const text = this.input.value.trim();
    if (!this.active || text === "" || text.length > this.maxChars) {
      return;
    }
    this.send(text);
    this.append(text, "from-me", "You");
    this.input.value = "";
    this.lastTypingSentAt = -Infinity;
    this.updateCounter();
  }

  receive(text) {
    if (typeof text !== "string" || text === "") {
      return;
    }
    this.hideTyping();
    this.append(text, "from-partner", "Partner");
  }

  // A short line in the log about the call itself (for example a game that started).
  note(text) {
    this.append(text, "chat-note", null);
  }

  showTyping() {
    this.indicator.hidden = false;
    window.clearTimeout(this.typingTimer);
    this.typingTimer = window.setTimeout(() => this.hideTyping(), this.typingIdleMs);
  }

  hideTyping() {
    window.clearTimeout(this.typingTimer);
    this.typingTimer = 0;
    this.indicator.hidden = true;
  }

  // Forget every message: the chat lives only as long as the call.
  clear() {
    this.hideTyping();
    this.log.replaceChildren();
    this.input.value = "";
    this.updateCounter();
    this.setActive(false);
  }

  append(text, className, speaker) {
    const item = document.createElement("p");
    item.className = className;
    if (speaker !== null) {
      const label = document.createElement("span");
      label.className = "visually-hidden";
      label.textContent = `${speaker}: `;
      item.append(label);
    }
    // textContent, never innerHTML: a message like "<img onerror=…>" shows as those characters.
    item.append(document.createTextNode(text));
    this.log.append(item);
    this.log.scrollTop = this.log.scrollHeight;
  }
}
