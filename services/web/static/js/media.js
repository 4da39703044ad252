// The microphone: one getUserMedia request per call, clear messages for each failure, and a full stop.

// Echo cancellation and noise suppression matter most for calls on laptop speakers.
export const AUDIO_CONSTRAINTS = Object.freeze({
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  video: false,
});

const MESSAGES = {
  NotAllowedError:
    "Calln cannot use your microphone because permission was denied. Allow the microphone for this site " +
    "in your browser's address bar, then press Start again.",
  SecurityError:
    "Your browser blocked the microphone on this page. Open Calln over https:// or from localhost, then try again.",
  NotFoundError: "No microphone was found. Plug one in or check your system sound settings, then press Start again.",
  OverconstrainedError: "No microphone was found. Plug one in or check your system sound settings, then press Start again.",
  NotReadableError:
    "Your microphone is busy or blocked by the system. Close other apps that use it (calls, recorders), then try again.",
  AbortError: "The microphone stopped while starting. Check it and press Start again.",
  NoMediaDevices: "This browser cannot record audio here. Use a current browser over https:// or localhost.",
};

const FALLBACK_MESSAGE = "Calln could not start your microphone. Check it and press Start again.";

export class MicrophoneError extends Error {
  constructor(name, message) {
    super(message);
    this.name = "MicrophoneError";
    this.reason = name;
  }
}

// Map a getUserMedia failure to the message the page shows.
export function microphoneMessage(error) {
  const name = error && typeof error.name === "string" ? error.name : "";
  return MESSAGES[name] ?? FALLBACK_MESSAGE;
}

// Request the microphone; rejects with a MicrophoneError that carries the message to show.
export async function openMicrophone() {
  if (!navigator.mediaDevices || typeof navigator.mediaDevices.getUserMedia !== "function") {
    throw new MicrophoneError("NoMediaDevices", MESSAGES.NoMediaDevices);
  }
  try {
    return await navigator.mediaDevices.getUserMedia(AUDIO_CONSTRAINTS);
  } catch (error) {
    throw new MicrophoneError(error?.name ?? "Error", microphoneMessage(error));
  }
}

export function stopStream(stream) {
  if (!stream) {
    return;
  }
  for (const track of stream.getTracks()) {
    track.stop();
  }
}
