// First-party analytics, active only after Accept: POST /api/events with an event name and nothing else.

export class Analytics {
  constructor(allowedNames, externalScriptUrl) {
    this.allowedNames = new Set(allowedNames);
    this.externalScriptUrl = externalScriptUrl;
    this.enabled = false;
    this.externalLoaded = false;
  }

  // Start counting from now on; loads the configured external script, if any, once.
  enable() {
    const wasEnabled = this.enabled;
    this.enabled = true;
    if (!wasEnabled) {
      this.track("page_view");
    }
    if (this.externalScriptUrl && !this.externalLoaded) {
      this.externalLoaded = true;
      const script = document.createElement("script");
      script.src = this.externalScriptUrl;
      script.async = true;
      script.referrerPolicy = "no-referrer";
      document.head.append(script);
    }
  }

  // Events stop at once; an external script already loaded stays until the page reloads.
  disable() {
    this.enabled = false;
  }

  track(name) {
    if (!this.enabled || !this.allowedNames.has(name)) {
      return;
    }
    // `credentials: "omit"` keeps the browser-id cookie off the request: the count carries no identifier.
    fetch("/api/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name }),
      credentials: "omit",
      keepalive: true,
    }).catch(() => {
      // A lost count is not worth bothering the person about.
    });
  }
}
