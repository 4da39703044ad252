"""Real WebRTC peers for tests: aiortc with a generated tone, signalled through Calln gateways.

aioice gathers host candidates on every interface except loopback. Tests must keep their
traffic on loopback, so `loopback_only_ice` replaces that address list with 127.0.0.1: a
patch of the candidate source, named as such, while ICE, DTLS and SRTP stay real.
"""

import asyncio
import fractions
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp
from av import AudioFrame

from tests.support.client import Peer

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz, the Opus frame size aiortc uses


@contextmanager
def loopback_only_ice() -> Iterator[None]:
    """Make aioice gather host candidates on 127.0.0.1 only."""
    with mock.patch("aioice.ice.get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"]):
        yield


class ToneTrack(MediaStreamTrack):
    """An audio track that plays a sine tone at `frequency_hz`, paced in real time."""

    kind = "audio"

    def __init__(self, frequency_hz: float) -> None:
        super().__init__()
        self.frequency_hz = frequency_hz
        self._samples_sent = 0
        self._started = 0.0

    async def recv(self) -> AudioFrame:
        if self._started == 0.0:
            self._started = time.monotonic()
        due = self._started + self._samples_sent / SAMPLE_RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # paces the media clock, not a synchronisation wait

        index = np.arange(self._samples_sent, self._samples_sent + FRAME_SAMPLES)
        wave = (np.sin(2 * math.pi * self.frequency_hz * index / SAMPLE_RATE) * 12000).astype(np.int16)
        frame = AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._samples_sent
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._samples_sent += FRAME_SAMPLES
        return frame


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    spectrum[0] = 0
    return float(np.fft.rfftfreq(len(samples), 1 / sample_rate)[int(np.argmax(spectrum))])


def split_candidates(sdp: str) -> tuple[str, list[str]]:
    """Remove a=candidate lines from an SDP and return them separately, for trickling."""
    kept, candidates = [], []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            candidates.append(line[2:])
        elif line != "a=end-of-candidates":
            kept.append(line)
    return "\r\n".join(kept) + "\r\n", candidates


class CallPeer:
    """Drives one aiortc RTCPeerConnection from the events of one Socket.IO client."""

    def __init__(self, client: Peer, frequency_hz: float) -> None:
        self.client = client
        self.pc = RTCPeerConnection()
        self.pc.addTrack(ToneTrack(frequency_hz))
        self.call_id = ""
        self.frames_received = 0
        self.received_samples: list[np.ndarray] = []
        self.remote_candidates: list[str] = []
        self.remote_sdps: list[str] = []
        self._queued: list[dict[str, Any]] = []
        self._remote_set = False
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = asyncio.Event()
        self.pc.on("track", self._on_track)
        self.pc.on("iceconnectionstatechange", self._on_ice_state)

    def _on_ice_state(self) -> None:
        if self.pc.iceConnectionState in ("connected", "completed"):
            self.connected.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.create_task(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            self.frames_received += 1
            self.received_samples.append(frame.to_ndarray().reshape(-1))

    async def start(self, matched: dict[str, Any]) -> None:
        self.call_id = matched["call_id"]
        self._tasks.append(asyncio.create_task(self._signal_loop()))
        if matched["role"] == "offerer":
            await self.pc.setLocalDescription(await self.pc.createOffer())
            await self._send_description()

    async def _send_description(self) -> None:
        description = self.pc.localDescription
        sdp, candidates = split_candidates(description.sdp)
        # Candidates go first, so the partner must queue them until the description arrives.
        for line in candidates:
            await self._send_signal("candidate", {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0})
        await self._send_signal(description.type, {"type": description.type, "sdp": sdp})
        await self._send_signal("candidate", None)

    async def _send_signal(self, kind: str, data: Any) -> None:
        await self.client.emit("signal", {"call_id": self.call_id, "kind": kind, "data": data})

    async def _signal_loop(self) -> None:
        while True:
            message = await self.client.next("signal", timeout_s=60)
            if message["call_id"] != self.call_id:
                continue
            await self._on_signal(message["kind"], message["data"])

    async def _on_signal(self, kind: str, data: Any) -> None:
        if kind in ("offer", "answer"):
            self.remote_sdps.append(data["sdp"])
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type=data["type"]))
            self._remote_set = True
            for queued in self._queued:
                await self._add_candidate(queued)
            self._queued.clear()
            if kind == "offer":
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self._send_description()
        elif kind == "candidate" and data is not None:
            self.remote_candidates.append(data["candidate"])
            if self._remote_set:
                await self._add_candidate(data)
            else:
                self._queued.append(data)

    async def _add_candidate(self, data: dict[str, Any]) -> None:
        candidate = candidate_from_sdp(data["candidate"].removeprefix("candidate:"))
        candidate.sdpMid = data.get("sdpMid")
        candidate.sdpMLineIndex = data.get("sdpMLineIndex")
        await self.pc.addIceCandidate(candidate)

    def heard_frequency(self) -> float:
        samples = np.concatenate(self.received_samples[-50:])
        # Decoded Opus is stereo interleaved at 48 kHz; keep one channel.
        return dominant_frequency(samples[::2], SAMPLE_RATE)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()


__all__ = ["CallPeer", "ToneTrack", "candidate_to_sdp", "loopback_only_ice", "split_candidates"]
