// The "call us" page: microphone -> WebRTC -> voicebot; keypad, hang-up and captions over a data channel.
// State for people (the page) and for tests (window.voicebotCall).
"use strict";

const ui = {
  call: document.getElementById("call"),
  hangup: document.getElementById("hangup"),
  status: document.getElementById("status"),
  level: document.getElementById("level"),
  captions: document.getElementById("captions"),
  remote: document.getElementById("remote"),
  keys: Array.from(document.querySelectorAll("#keypad button")),
};

const call = window.voicebotCall = {
  state: "idle", callId: null, level: 0, peakLevel: 0, captions: [], sentDigits: [], hangupReason: null, error: null,
};
let pc = null, control = null, mic = null, audioContext = null, levelTimer = null;

function setState(state, text) {
  call.state = state;
  ui.status.textContent = text;
  const inCall = state === "connecting" || state === "connected";
  ui.call.disabled = inCall;
  ui.hangup.disabled = !inCall;
  ui.keys.forEach((key) => { key.disabled = state !== "connected"; });
}

function addCaption(who, text) {
  call.captions.push({ who, text });
  const line = document.createElement("p");
  line.className = "who-" + who;
  line.textContent = (who === "bot" ? "Assistant: " : "You: ") + text;
  ui.captions.appendChild(line);
  ui.captions.scrollTop = ui.captions.scrollHeight;
}

function waitForIceGathering(peer, timeoutMs) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { peer.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (peer.iceGatheringState === "complete") done(); };
    peer.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs);  // host candidates come at once; do not wait forever for anything else
  });
}

function measureLevel(stream) {
  audioContext = new AudioContext();
  const analyser = audioContext.createAnalyser();
  analyser.fftSize = 2048;
  audioContext.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  levelTimer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    call.level = Math.sqrt(sum / samples.length);
    call.peakLevel = Math.max(call.peakLevel, call.level);
    ui.level.value = call.level;
  }, 50);
}

function onControlMessage(event) {
  let message;
  try { message = JSON.parse(event.data); } catch (e) { return; }
  if (message.type === "caption") addCaption(message.who, message.text);
  else if (message.type === "hangup") finish(message.reason || "the assistant hung up", false);
}

async function startCall() {
  setState("connecting", "Connecting…");
  call.hangupReason = null;
  call.error = null;
  try {
    const config = await (await fetch("webrtc/config")).json();
    mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    pc = new RTCPeerConnection({ iceServers: config.iceServers });
    mic.getTracks().forEach((track) => pc.addTrack(track, mic));
    control = pc.createDataChannel("control");
    control.onmessage = onControlMessage;
    control.onopen = () => setState("connected", "Connected — speak, or use the keypad");
    pc.ontrack = (event) => {
      const stream = event.streams[0] || new MediaStream([event.track]);
      ui.remote.srcObject = stream;  // Chrome only feeds WebAudio from a remote stream that also plays somewhere
      measureLevel(stream);
    };
    pc.onconnectionstatechange = () => {
      if (pc && (pc.connectionState === "failed" || pc.connectionState === "closed")) finish("connection lost", false);
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, 3000);
    const response = await fetch("webrtc/offer", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || ("HTTP " + response.status));
    call.callId = answer.call_id;
    await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
  } catch (error) {
    call.error = String(error);
    finish("could not connect: " + error.message, false);
  }
}

function sendDigit(digit) {
  if (!control || control.readyState !== "open") return;
  control.send(JSON.stringify({ type: "dtmf", digit }));
  call.sentDigits.push(digit);
}

function finish(reason, tellServer) {
  if (call.state === "ended" || call.state === "idle") return;
  if (tellServer && control && control.readyState === "open") {
    control.send(JSON.stringify({ type: "hangup", reason: "caller hung up" }));
  }
  call.hangupReason = reason;
  const peer = pc;
  pc = null;
  clearInterval(levelTimer);
  // Close after a moment so the hang-up message leaves before the transport goes.
  setTimeout(() => { if (peer) peer.close(); }, tellServer ? 200 : 0);
  if (mic) mic.getTracks().forEach((track) => track.stop());
  if (audioContext) audioContext.close();
  setState("ended", "Call ended: " + reason);
}

ui.call.addEventListener("click", startCall);
ui.hangup.addEventListener("click", () => finish("you hung up", true));
ui.keys.forEach((key) => key.addEventListener("click", () => sendDigit(key.dataset.digit)));
document.addEventListener("keydown", (event) => {
  if (call.state === "connected" && /^[0-9*#]$/.test(event.key)) sendDigit(event.key);
});
setState("idle", "Not connected");
