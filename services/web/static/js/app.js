// The page controller: moves between the screens as the server and the person act.
//
// Phases: idle (start screen), waiting (in the queue), call, ended (partner left or a report was sent).
// `wantQueue` is true while the person wants a partner; on every (re)connect the page joins again then.

import { Ads } from "./ads.js";
import { Analytics } from "./analytics.js";
import { PeerCall } from "./call.js";
import { ChatPanel } from "./chat.js";
import { Consent, ACCEPTED } from "./consent.js";
import { setUpGate } from "./gate.js";
import { Games } from "./games.js";
import { openMicrophone, stopStream } from "./media.js";
import { LevelMeter, audioContext } from "./meter.js";
import { ANY, CountryPicker } from "./picker.js";
import { ReportDialog } from "./report.js";
import { Signalling, browserId } from "./signalling.js";
import { KEYS, loadFlag, saveFlag } from "./storage.js";
import { $, Stopwatch, currentScreen, flagUrl, setStatus, showScreen } from "./ui.js";

const PARTNER_LEFT_TEXT = {
  skip: "Your partner moved on to someone new.",
  stop: "Your partner ended the call.",
  ended: "Your partner ended the call.",
  disconnected: "Your partner's connection dropped.",
  reported: "The call was ended after a report.",
  banned: "Your partner was removed from Calln.",
};

// Errors that follow from a race the page already handled, such as a candidate sent just as the partner
// skipped. They need no message.
const RACE_ERROR_CODES = new Set(["not_in_call", "wrong_call", "already_in_call"]);

// Errors the gateway sends back for a report it did not accept.
const REPORT_ERROR_CODES = new Set(["already_reported", "invalid_report", "invalid_reason", "rate_limited"]);

const CONNECTION_TEXT = {
  new: "Connecting…",
  connecting: "Connecting…",
  connected: "Connected",
  disconnected: "Connection interrupted, trying again…",
  restarting: "Reconnecting…",
  failed: "Connection failed",
  closed: "Call ended",
};

export class App {
  constructor(config, countries) {
    this.config = config;
    this.limits = config.limits;
    this.phase = "idle";
    this.wantQueue = false;
    this.call = null;
    this.lastCallId = null;
    this.reportedCalls = new Set();
    this.stream = null;
    this.autoNextTimer = 0;
    this.resumeToken = null;
    this.moving = false;
    this.pendingReport = null;

    this.consent = new Consent();
    this.analytics = new Analytics(config.analytics_events, config.analytics_url);
    this.ads = new Ads(config.ads_url, this.limits.ads_interstitial_s);
    this.picker = new CountryPicker(countries, () => this.onCountryChange());
    this.chat = new ChatPanel(this.limits, {
      send: (text) => this.emitInCall("chat", { text }),
      sendTyping: () => this.emitInCall("typing", {}),
    });
    this.games = new Games({
      send: (payload) => this.emitInCall("game", payload),
      onPlay: () => this.analytics.track("game_play"),
      note: (text) => this.chat.note(text),
    });
    this.report = new ReportDialog((reason) => this.sendReport(reason));
    this.waitClock = new Stopwatch($("wait-time"));
    this.callClock = new Stopwatch($("call-timer"));
    this.localMeter = new LevelMeter($("meter-local"));
    this.remoteMeter = new LevelMeter($("meter-remote"));
    this.signalling = new Signalling(config.gateways, () => this.auth(), this.serverHandlers());
  }

  setUp() {
    this.consent.setUp();
    this.consent.onChoice((choice) => this.applyConsent(choice));
    setUpGate(() => this.showStart());
    this.picker.render();
    this.chat.setUp();
    this.games.setUp();
    this.report.setUp();
    this.setUpSwitches();
    this.setUpButtons();
    document.addEventListener("keydown", (event) => this.onKey(event));
  }

  // The Socket.IO auth payload; the resume token is sent only when a draining gateway asked us to move.
  auth() {
    const auth = { browser_id: browserId(), hide_ip: loadFlag(KEYS.hideIp) };
    if (this.moving && this.resumeToken !== null) {
      auth.resume_token = this.resumeToken;
    }
    return auth;
  }

  applyConsent(choice) {
    if (choice === ACCEPTED) {
      this.analytics.enable();
      this.ads.enable();
    } else {
      this.analytics.disable();
      this.ads.disable();
    }
  }

  // -- controls ----------------------------------------------------------------------------

  setUpSwitches() {
    const hideIp = $("hide-ip-switch");
    hideIp.checked = loadFlag(KEYS.hideIp);
    hideIp.addEventListener("change", () => {
      saveFlag(KEYS.hideIp, hideIp.checked);
      this.showRelayWarning();
      // The gateway reads hide_ip when the socket connects.
      if (this.signalling.connected && this.phase === "idle") {
        this.signalling.reconnect();
      }
    });
    this.showRelayWarning();

    const autoNext = [$("auto-next-switch"), $("auto-next-switch-ended")];
    for (const box of autoNext) {
      box.checked = loadFlag(KEYS.autoNext);
      box.addEventListener("change", () => {
        saveFlag(KEYS.autoNext, box.checked);
        autoNext.forEach((other) => { other.checked = box.checked; });
        if (!box.checked) {
          this.cancelAutoNext();
        }
      });
    }

    const widen = $("widen-switch");
    widen.checked = loadFlag(KEYS.widen);
    widen.addEventListener("change", () => saveFlag(KEYS.widen, widen.checked));
    this.onCountryChange();
  }

  setUpButtons() {
    $("start-button").addEventListener("click", () => this.start());
    $("waiting-stop").addEventListener("click", () => this.stop());
    $("mute-button").addEventListener("click", () => this.toggleMute());
    $("skip-button").addEventListener("click", () => this.skip());
    $("stop-button").addEventListener("click", () => this.stop());
    $("report-button").addEventListener("click", () => this.report.open());
    $("ended-report").addEventListener("click", () => {
      this.cancelAutoNext(); // The next search would close the dialog under the person's hands.
      this.report.open();
    });
    $("next-button").addEventListener("click", () => this.next());
    $("ended-home").addEventListener("click", () => this.stop());
  }

  onKey(event) {
    if (event.key !== "Escape" || event.isComposing || this.report.isOpen) {
      return;
    }
    if (this.phase === "call") {
      event.preventDefault();
      this.skip();
    }
  }

  onCountryChange() {
    $("widen-row").hidden = this.picker.selected === ANY;
    $("wait-country").textContent = this.picker.nameOf(this.picker.selected);
  }

  showRelayWarning() {
    $("hide-ip-warning").hidden = !(loadFlag(KEYS.hideIp) && !this.config.relay_available);
  }

  showStart() {
    this.phase = "idle";
    $("start-button").disabled = false;
    showScreen("start");
  }

  showFirstScreen(ageConfirmed) {
    if (ageConfirmed) {
      this.showStart();
    } else {
      showScreen("gate");
    }
  }

  showStartError(message) {
    const error = $("start-error");
    error.textContent = message;
    error.hidden = false;
    error.scrollIntoView({ block: "nearest" });
  }

  // -- queue -------------------------------------------------------------------------------

  async start() {
    const button = $("start-button");
    button.disabled = true;
    $("start-error").hidden = true;
    setStatus("Asking for your microphone…");
    audioContext(); // created inside the click, so the browser lets it play

    try {
      this.stream = await openMicrophone();
    } catch (error) {
      setStatus("");
      this.showStartError(error.message);
      button.disabled = false;
      return;
    }
    setStatus("");
    this.analytics.track("call_start");
    this.enterQueue();
  }

  next() {
    this.cancelAutoNext();
    audioContext();
    this.enterQueue();
  }

  enterQueue() {
    this.wantQueue = true;
    this.phase = "waiting";
    this.showWaiting(this.signalling.connected ? "Waiting for someone…" : "Connecting to the call server…");
    if (this.signalling.connected) {
      this.sendJoin();
    } else {
      this.signalling.connect();
    }
  }

  showWaiting(status) {
    if (!this.waitClock.running) {
      this.waitClock.start();
    }
    $("waiting-status").textContent = status;
    showScreen("waiting");
  }

  sendJoin() {
    const payload = { country: this.picker.selected };
    if (this.picker.selected !== ANY) {
      payload.widen = loadFlag(KEYS.widen);
    }
    this.signalling.emit("join", payload);
  }

  skip() {
    if (this.phase !== "call" || this.call === null) {
      return;
    }
    // The gateway ends the call for both sides and puts this side back in the queue.
    this.signalling.emit("skip");
    this.endCall();
    this.phase = "waiting";
    this.waitClock.stop();
    this.showWaiting("Looking for someone new…");
  }

  stop() {
    this.cancelAutoNext();
    this.wantQueue = false;
    if (this.phase === "call" || this.phase === "waiting") {
      this.signalling.emit("stop");
    }
    this.endCall();
    stopStream(this.stream);
    this.stream = null;
    this.waitClock.stop();
    this.showStart();
  }

  // -- calls -------------------------------------------------------------------------------

  async onMatched(data) {
    if (!this.wantQueue || typeof data.call_id !== "string") {
      return;
    }
    this.endCall();
    this.analytics.track("call_match");
    const call = { callId: data.call_id, role: data.role, peer: null, early: [], stream: null };
    this.call = call;
    this.lastCallId = call.callId;
    this.phase = "call";
    this.waitClock.stop();
    this.showCallScreen(data.partner_country);

    const stream = await this.takeMicrophone(call);
    if (stream === null) {
      return;
    }
    call.stream = stream;
    this.localMeter.attach(stream);
    const iceServers = Array.isArray(data.ice_servers) && data.ice_servers.length ? data.ice_servers : this.config.ice_servers;
    const hideIp = loadFlag(KEYS.hideIp);
    $("relay-warning").hidden = !(hideIp && !iceServers.some(isRelayServer));
    call.peer = new PeerCall({
      callId: call.callId,
      role: call.role,
      iceServers,
      hideIp,
      localStream: stream,
      limits: this.limits,
      send: (kind, signalData) => this.signalling.emit("signal", { call_id: call.callId, kind, data: signalData }),
      onRemoteStream: (remote) => this.playRemote(remote),
      onStateChange: (state) => this.showConnectionState(state),
    });
    for (const [kind, signalData] of call.early) {
      call.peer.handleSignal(kind, signalData);
    }
    call.early = [];
    call.peer.start();
  }

  // The microphone from Start is used for the first call; later calls open it again, since every call
  // stops its tracks when it ends. Returns null when the call ended meanwhile or the microphone failed.
  async takeMicrophone(call) {
    let stream = this.stream;
    this.stream = null;
    if (stream === null || stream.getTracks().some((track) => track.readyState === "ended")) {
      stopStream(stream);
      try {
        stream = await openMicrophone();
      } catch (error) {
        if (this.call === call) {
          this.stop();
          this.showStartError(error.message);
        }
        return null;
      }
    }
    if (this.call !== call) {
      stopStream(stream);
      return null;
    }
    return stream;
  }

  showCallScreen(partnerCountry) {
    const code = typeof partnerCountry === "string" ? partnerCountry.toUpperCase() : "XX";
    const known = code !== "XX" && this.picker.names.has(code);
    $("partner-flag").src = flagUrl(code);
    $("partner-title").textContent = known ? this.picker.nameOf(code) : "Unknown";
    $("mute-button").setAttribute("aria-pressed", "false");
    $("mute-button").textContent = "Mute";
    $("relay-warning").hidden = true;
    this.showConnectionState("new");
    this.chat.clear();
    this.chat.setActive(true);
    this.games.begin(this.call.role);
    this.callClock.start();
    showScreen("call");
  }

  playRemote(stream) {
    const audio = $("remote-audio");
    audio.srcObject = stream;
    audio.play().catch(() => {
      setStatus("Your browser blocked the partner's audio; click anywhere on the page to hear them.");
      document.addEventListener("click", () => audio.play().then(() => setStatus("")).catch(() => {}), { once: true });
    });
    this.remoteMeter.attach(stream);
  }

  showConnectionState(state) {
    const element = $("connection-state");
    element.dataset.state = state;
    element.textContent = CONNECTION_TEXT[state] ?? state;
  }

  toggleMute() {
    const stream = this.call?.stream;
    if (!stream) {
      return;
    }
    const muted = $("mute-button").getAttribute("aria-pressed") !== "true";
    for (const track of stream.getAudioTracks()) {
      track.enabled = !muted;
    }
    $("mute-button").setAttribute("aria-pressed", String(muted));
    $("mute-button").textContent = muted ? "Unmute" : "Mute";
  }

  // Tear down the current call: close the connection, stop every track, forget chat and games.
  endCall() {
    const call = this.call;
    this.call = null;
    if (call === null) {
      return;
    }
    call.peer?.close();
    stopStream(call.stream);
    this.localMeter.detach();
    this.remoteMeter.detach();
    const audio = $("remote-audio");
    audio.pause();
    audio.srcObject = null;
    this.callClock.stop();
    this.chat.clear();
    this.games.end();
    this.report.close();
  }

  emitInCall(event, payload) {
    if (this.call === null) {
      return;
    }
    this.signalling.emit(event, { ...payload, call_id: this.call.callId });
  }

  onPartnerLeft(data) {
    if (this.call === null || data.call_id !== this.call.callId) {
      return;
    }
    this.endCall();
    this.wantQueue = false;
    this.showEnded("Your partner left", PARTNER_LEFT_TEXT[data.reason] ?? "The call ended.");
    if (loadFlag(KEYS.autoNext)) {
      this.scheduleAutoNext();
    }
  }

  showEnded(title, detail) {
    this.phase = "ended";
    $("ended-title").textContent = title;
    $("ended-detail").textContent = detail;
    $("ended-report").disabled = this.lastCallId === null || this.reportedCalls.has(this.lastCallId);
    $("auto-next-note").hidden = true;
    showScreen("ended");
  }

  scheduleAutoNext() {
    const note = $("auto-next-note");
    note.hidden = false;
    note.textContent = `Auto next is on: finding someone new in ${this.limits.auto_next_delay_s} s…`;
    this.autoNextTimer = window.setTimeout(async () => {
      this.autoNextTimer = 0;
      await this.ads.between();
      if (this.phase === "ended" && loadFlag(KEYS.autoNext)) {
        this.next();
      }
    }, this.limits.auto_next_delay_s * 1000);
  }

  cancelAutoNext() {
    window.clearTimeout(this.autoNextTimer);
    this.autoNextTimer = 0;
    $("auto-next-note").hidden = true;
  }

  // -- reports -----------------------------------------------------------------------------

  sendReport(reason) {
    const callId = this.call?.callId ?? this.lastCallId;
    if (callId === null || !this.signalling.emit("report", { call_id: callId, reason })) {
      setStatus("The report could not be sent: not connected to the call server. Try again in a moment.");
      return;
    }
    this.reportedCalls.add(callId);
    this.pendingReport = callId;
    if (this.call !== null && this.call.callId === callId) {
      // The gateway ends a reported call; this side stops searching until the person chooses Next.
      this.endCall();
      this.wantQueue = false;
    }
    this.cancelAutoNext();
    this.showEnded("Report sent", "Thank you. The call has ended, and you will not be paired with this person again for a while.");
  }

  // -- server events -----------------------------------------------------------------------

  serverHandlers() {
    return {
      connected: () => setStatus(""),
      disconnected: (reason, how) => this.onDisconnected(how),
      hello: (data) => this.onHello(data),
      waiting: () => this.onWaiting(),
      matched: (data) => this.onMatched(data),
      signal: (data) => this.onSignal(data),
      chat: (data) => this.forCurrentCall(data, () => this.chat.receive(data.text)),
      typing: (data) => this.forCurrentCall(data, () => this.chat.showTyping()),
      game: (data) => this.forCurrentCall(data, () => this.games.receive(data)),
      partner_left: (data) => this.onPartnerLeft(data),
      online: (data) => this.showOnline(data.count),
      banned: (data) => this.onBanned(data),
      error: (data) => this.onServerError(data),
      stopped: () => {},
      reported: () => {
        this.pendingReport = null;
        setStatus("Your report was received. Thank you.");
      },
      resume_token: (data) => this.keepResumeToken(data.token),
      ice_servers: (data) => this.forCurrentCall(data, () => this.call.peer?.updateIceServers(data.ice_servers)),
    };
  }

  forCurrentCall(data, action) {
    if (this.call !== null && data.call_id === this.call.callId) {
      action();
    }
  }

  onHello(data) {
    this.showOnline(data.online);
    this.keepResumeToken(data.resume_token);
    const moved = this.moving;
    this.moving = false;
    if (moved && this.resumed(data.resumed)) {
      setStatus("");
      return;
    }
    if (this.call !== null) {
      // The move did not carry the call over; the old gateway ends it for the partner.
      this.endCall();
      this.phase = "waiting";
      this.waitClock.stop();
    }
    if (this.wantQueue) {
      this.showWaiting("Waiting for someone…");
      this.sendJoin();
    }
  }

  // True when the new gateway carried on the session as it was on the old one.
  resumed(state) {
    if (state === null || typeof state !== "object") {
      return false;
    }
    if (state.state === "in_call") {
      return this.call !== null && state.call_id === this.call.callId;
    }
    return state.state === "waiting" && this.call === null && this.wantQueue;
  }

  keepResumeToken(token) {
    if (typeof token === "string" && token !== "") {
      this.resumeToken = token;
    }
  }

  onWaiting() {
    if (this.wantQueue && this.call === null) {
      this.phase = "waiting";
      this.showWaiting("Waiting for someone…");
    }
  }

  onSignal(data) {
    const call = this.call;
    if (call === null || data.call_id !== call.callId) {
      return;
    }
    if (call.peer === null) {
      call.early.push([data.kind, data.data]); // The microphone is still opening.
    } else {
      call.peer.handleSignal(data.kind, data.data);
    }
  }

  onDisconnected({ moving, wasConnected }) {
    // A draining gateway saved this session, so the next gateway resumes it, call included. A failed
    // attempt to reach that next gateway keeps the move going: the saved session waits for a while.
    if (moving || (this.moving && !wasConnected)) {
      this.moving = true;
      setStatus("Moving to another call server…");
      return;
    }
    this.moving = false;
    if (this.call !== null) {
      // The gateway ends the call when the socket drops; the page joins again after reconnecting.
      this.endCall();
      this.phase = "waiting";
      this.waitClock.stop();
    }
    if (this.wantQueue) {
      this.showWaiting("Lost the connection to the call server. Reconnecting…");
    } else {
      setStatus("Lost the connection to the call server. Reconnecting…");
    }
  }

  showOnline(count) {
    if (!Number.isInteger(count)) {
      return;
    }
    $("online-count").textContent = String(count);
    $("online-badge").hidden = false;
    $("wait-online").textContent = String(count);
  }

  onBanned(data) {
    this.wantQueue = false;
    this.signalling.close();
    this.cancelAutoNext();
    this.endCall();
    stopStream(this.stream);
    this.stream = null;
    this.waitClock.stop();
    const until = Number(data.until);
    $("banned-detail").textContent = Number.isFinite(until) && until > 0
      ? `Several people reported calls with this connection, so it is banned until ${new Date(until * 1000).toLocaleString()}.`
      : "Several people reported calls with this connection, so it is banned for a while.";
    this.phase = "idle";
    showScreen("banned");
  }

  onServerError(data) {
    const code = typeof data.code === "string" ? data.code : "error";
    if (code === "banned") {
      this.onBanned({});
      return;
    }
    if (RACE_ERROR_CODES.has(code)) {
      return;
    }
    const message = typeof data.message === "string" ? data.message : code;
    if (this.pendingReport !== null && REPORT_ERROR_CODES.has(code)) {
      if (code !== "already_reported") {
        this.reportedCalls.delete(this.pendingReport); // Let the person try again.
      }
      this.pendingReport = null;
      this.showEnded("Report not sent", `The call server did not accept the report: ${message}.`);
      return;
    }
    setStatus(`The call server rejected a request (${code}): ${message}`);
    if (code === "invalid_country" && currentScreen() === "waiting") {
      this.stop();
    }
  }
}

function isRelayServer(server) {
  const urls = Array.isArray(server?.urls) ? server.urls : [server?.urls];
  return urls.some((url) => typeof url === "string" && /^turns?:/.test(url));
}
