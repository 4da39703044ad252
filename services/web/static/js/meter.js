// Live audio level meters drawn from an AnalyserNode, one per stream.

let sharedContext = null;

// The AudioContext must be created or resumed from a user gesture (the Start button) to run.
export function audioContext() {
  if (sharedContext === null) {
    sharedContext = new AudioContext();
  }
  if (sharedContext.state === "suspended") {
    sharedContext.resume().catch(() => {});
  }
  return sharedContext;
}

// Levels below this (in dBFS) draw as silence; -60 dB is about the noise floor of a quiet room.
const FLOOR_DB = -60;

export class LevelMeter {
  constructor(fillElement) {
    this.fill = fillElement;
    this.source = null;
    this.analyser = null;
    this.samples = null;
    this.frame = 0;
  }

  attach(stream) {
    this.detach();
    const context = audioContext();
    this.source = context.createMediaStreamSource(stream);
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = 1024;
    this.samples = new Float32Array(this.analyser.fftSize);
    this.source.connect(this.analyser);
    this.tick();
  }

  detach() {
    window.cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.source?.disconnect();
    this.source = null;
    this.analyser = null;
    this.fill.style.transform = "scaleX(0)";
  }

  tick() {
    if (this.analyser === null) {
      return;
    }
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const sample of this.samples) {
      sum += sample * sample;
    }
    const rms = Math.sqrt(sum / this.samples.length);
    const db = rms > 0 ? 20 * Math.log10(rms) : FLOOR_DB;
    const level = Math.min(1, Math.max(0, (db - FLOOR_DB) / -FLOOR_DB));
    this.fill.style.transform = `scaleX(${level.toFixed(3)})`;
    this.frame = window.requestAnimationFrame(() => this.tick());
  }
}
