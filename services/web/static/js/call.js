// One WebRTC call: the RTCPeerConnection, its signalling, ICE restarts and a teardown that stops every track.
//
// Roles come from the server: the offerer makes every offer (also for ICE restarts) and the answerer only
// answers, so offers never collide. The answerer asks for the offer again (`need_offer`) when it is late.

// An answerer asks for a missing offer at most this many times before it shows the call as failed.
const MAX_NEED_OFFER_REQUESTS = 3;

// ICE restarts attempted per outage before the page gives up and leaves the choice to the person.
const MAX_ICE_RESTARTS = 3;

const PROBLEM_STATES = new Set(["disconnected", "failed"]);

export class PeerCall {
  // `send(kind, data)` relays a signal to the partner; `onRemoteStream(stream)` and `onStateChange(state)`
  // report progress. `limits` contains need_offer_after_s and ice_restart_after_s from /config.json.
  constructor({ callId, role, iceServers, hideIp, localStream, limits, send, onRemoteStream, onStateChange }) {
    this.callId = callId;
    this.role = role;
    this.localStream = localStream;
    this.limits = limits;
    this.send = send;
    this.onRemoteStream = onRemoteStream;
    this.onStateChange = onStateChange;
    this.pendingCandidates = [];
    this.queue = Promise.resolve();
    this.closed = false;
    this.needOfferRequests = 0;
    this.needOfferTimer = 0;
    this.restartTimer = 0;
    this.restarts = 0;
    this.remoteStream = null;

    // With "Hide my IP" on, only relay candidates are gathered, so the partner never sees our address.
    this.pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: hideIp ? "relay" : "all" });
    this.pc.addEventListener("icecandidate", (event) => this.onLocalCandidate(event));
    this.pc.addEventListener("track", (event) => this.onTrack(event));
    this.pc.addEventListener("connectionstatechange", () => this.onConnectionState());
    for (const track of localStream.getTracks()) {
      this.pc.addTrack(track, localStream);
    }
  }

  get state() {
    return this.closed ? "closed" : this.pc.connectionState;
  }

  start() {
    if (this.role === "offerer") {
      this.serialize(() => this.sendOffer(false));
    } else {
      this.armNeedOffer();
    }
  }

  // Apply a signal from the partner. Signals run one at a time, in arrival order.
  handleSignal(kind, data) {
    this.serialize(() => this.applySignal(kind, data));
  }

  // Fresh ICE servers (new TURN credentials) apply to the next ICE restart.
  updateIceServers(iceServers) {
    if (this.closed || !Array.isArray(iceServers)) {
      return;
    }
    this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
  }

  // Stop every local and remote track and close the connection; safe to call in any state, twice too.
  close() {
    if (this.closed) {
      return;
    }
    this.closed = true;
    window.clearTimeout(this.needOfferTimer);
    window.clearTimeout(this.restartTimer);
    for (const sender of this.pc.getSenders()) {
      sender.track?.stop();
    }
    for (const receiver of this.pc.getReceivers()) {
      receiver.track?.stop();
    }
    for (const track of this.localStream.getTracks()) {
      track.stop();
    }
    this.pc.close();
    this.pendingCandidates = [];
    this.onStateChange("closed");
  }

  // -- signalling ----------------------------------------------------------------------------

  serialize(step) {
    this.queue = this.queue.then(async () => {
      if (this.closed) {
        return;
      }
      try {
        await step();
      } catch (error) {
        // A partner that left mid-negotiation makes steps fail; only report failures of a live call.
        if (!this.closed) {
          console.warn("calln: signalling step failed", error?.name, error?.message);
        }
      }
    });
  }

  async applySignal(kind, data) {
    if (kind === "offer" && this.role === "answerer") {
      await this.acceptOffer(data);
    } else if (kind === "answer" && this.role === "offerer") {
      await this.acceptAnswer(data);
    } else if (kind === "candidate") {
      await this.addRemoteCandidate(data);
    } else if (kind === "need_offer" && this.role === "offerer") {
      await this.resendOffer();
    }
  }

  async sendOffer(iceRestart) {
    const offer = await this.pc.createOffer({ iceRestart });
    await this.pc.setLocalDescription(offer);
    this.sendDescription();
  }

  sendDescription() {
    const description = this.pc.localDescription;
    if (description !== null) {
      this.send("offer" === description.type ? "offer" : "answer", { type: description.type, sdp: description.sdp });
    }
  }

  async resendOffer() {
    if (this.pc.signalingState === "have-local-offer") {
      this.sendDescription();
      return;
    }
    // Stable with an answer already applied: the answerer lost the connection, so restart ICE.
    await this.sendOffer(this.pc.remoteDescription !== null);
  }

  async acceptOffer(description) {
    window.clearTimeout(this.needOfferTimer);
    await this.pc.setRemoteDescription(description);
    await this.flushCandidates();
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.sendDescription();
  }

  async acceptAnswer(description) {
    if (this.pc.signalingState !== "have-local-offer") {
      return; // A late duplicate answer for an offer that is already settled.
    }
    await this.pc.setRemoteDescription(description);
    await this.flushCandidates();
  }

  // Candidates can arrive before the description they belong to; they wait until it is set.
  async addRemoteCandidate(candidate) {
    if (candidate === null || candidate === undefined) {
      return;
    }
    if (this.pc.remoteDescription === null) {
      this.pendingCandidates.push(candidate);
      return;
    }
    await this.pc.addIceCandidate(candidate);
  }

  async flushCandidates() {
    const waiting = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const candidate of waiting) {
      try {
        await this.pc.addIceCandidate(candidate);
      } catch (error) {
        console.warn("calln: queued candidate rejected", error?.name);
      }
    }
  }

  onLocalCandidate(event) {
    if (this.closed) {
      return;
    }
    this.send("candidate", event.candidate ? event.candidate.toJSON() : null);
  }

  armNeedOffer() {
    window.clearTimeout(this.needOfferTimer);
    this.needOfferTimer = window.setTimeout(() => {
      if (this.closed || this.pc.remoteDescription !== null) {
        return;
      }
      if (this.needOfferRequests >= MAX_NEED_OFFER_REQUESTS) {
        this.onStateChange("failed");
        return;
      }
      this.needOfferRequests += 1;
      this.send("need_offer", null);
      this.armNeedOffer();
    }, this.limits.need_offer_after_s * 1000);
  }

  // -- media and connection state ----------------------------------------------------------

  onTrack(event) {
    const stream = event.streams[0] ?? new MediaStream([event.track]);
    if (stream !== this.remoteStream) {
      this.remoteStream = stream;
      this.onRemoteStream(stream);
    }
  }

  onConnectionState() {
    if (this.closed) {
      return;
    }
    const state = this.pc.connectionState;
    this.onStateChange(state);
    if (state === "connected") {
      this.restarts = 0;
      window.clearTimeout(this.restartTimer);
      this.restartTimer = 0;
    } else if (PROBLEM_STATES.has(state) && this.restartTimer === 0) {
      this.armIceRestart();
    }
  }

  // Restart ICE when the connection stays disconnected or failed; brief drops heal without it.
  armIceRestart() {
    this.restartTimer = window.setTimeout(() => {
      this.restartTimer = 0;
      if (this.closed || !PROBLEM_STATES.has(this.pc.connectionState) || this.restarts >= MAX_ICE_RESTARTS) {
        return;
      }
      this.restarts += 1;
      this.onStateChange("restarting");
      if (this.role === "offerer") {
        this.serialize(() => this.sendOffer(true));
      } else {
        this.send("need_offer", null);
      }
      this.armIceRestart();
    }, this.limits.ice_restart_after_s * 1000);
  }
}
