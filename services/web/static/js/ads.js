// Optional ads, configured by ADS_URL and shown only after Accept: a footer slot and a pause between calls.

import { $ } from "./ui.js";

export class Ads {
  constructor(adsUrl, interstitialSeconds) {
    this.adsUrl = adsUrl;
    this.interstitialMs = interstitialSeconds * 1000;
    this.enabled = false;
  }

  enable() {
    if (!this.adsUrl || this.enabled) {
      return;
    }
    this.enabled = true;
    const slot = $("ad-slot");
    slot.replaceChildren(this.frame());
    slot.hidden = false;
  }

  disable() {
    this.enabled = false;
    $("ad-slot").replaceChildren();
    $("ad-slot").hidden = true;
  }

  // Show the interstitial between calls; resolves when it closes (button or timeout). No-op without ads.
  between() {
    if (!this.enabled) {
      return Promise.resolve();
    }
    const overlay = $("interstitial");
    $("interstitial-frame").replaceChildren(this.frame());
    overlay.hidden = false;
    $("interstitial-continue").focus();
    return new Promise((resolve) => {
      const listening = new AbortController();
      const close = () => {
        window.clearTimeout(timer);
        listening.abort();
        overlay.hidden = true;
        $("interstitial-frame").replaceChildren();
        resolve();
      };
      const timer = window.setTimeout(close, this.interstitialMs);
      $("interstitial-continue").addEventListener("click", close, { signal: listening.signal });
    });
  }

  frame() {
    const frame = document.createElement("iframe");
    frame.src = this.adsUrl;
    frame.title = "Advertisement";
    frame.loading = "lazy";
    frame.referrerPolicy = "no-referrer";
    frame.setAttribute("sandbox", "allow-scripts allow-popups allow-popups-to-escape-sandbox");
    return frame;
  }
}
