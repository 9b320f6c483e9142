// Agent desktop: take the offered call in the browser. Microphone -> WebRTC -> voicebot -> caller's phone;
// hang-up over a data channel. State for people (#call-status) and for tests (window.voicebotAgentCall).
"use strict";

const agentCall = window.voicebotAgentCall = {
  state: "idle", leg: null, level: 0, peakLevel: 0, hangupReason: null, error: null,
};
let agentPc = null, agentControl = null, agentMic = null, agentAudio = null, agentLevelTimer = null;

function agentCallStatus(state, text) {
  agentCall.state = state;
  const status = document.getElementById("call-status");
  if (status) status.textContent = text;
  const inCall = state === "connecting" || state === "connected";
  document.getElementById("answer").disabled = inCall;
  document.getElementById("hangup-call").classList.toggle("hidden", !inCall);
}

function agentIceGathered(peer, timeoutMs) {
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { peer.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (peer.iceGatheringState === "complete") done(); };
    peer.addEventListener("icegatheringstatechange", check);
    setTimeout(done, timeoutMs);  // host candidates come at once
  });
}

function agentMeasure(stream) {  // the caller's level as heard here (WebAudio analyser)
  agentAudio = new AudioContext();
  const analyser = agentAudio.createAnalyser();
  analyser.fftSize = 2048;
  agentAudio.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  agentLevelTimer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    agentCall.level = Math.sqrt(sum / samples.length);
    agentCall.peakLevel = Math.max(agentCall.peakLevel, agentCall.level);
  }, 50);
}

// Answer `assignment` for `agent` with the agent's own token; resolves when the answer SDP is applied.
async function answerInBrowser(token, agent, assignment) {
  agentCallStatus("connecting", "Connecting…");
  Object.assign(agentCall, { leg: null, level: 0, peakLevel: 0, hangupReason: null, error: null });
  try {
    let iceServers = [];
    const config = await fetch("/webrtc/config");
    if (config.ok) iceServers = (await config.json()).iceServers || [];
    agentMic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    agentPc = new RTCPeerConnection({ iceServers });
    agentMic.getTracks().forEach((track) => agentPc.addTrack(track, agentMic));
    agentControl = agentPc.createDataChannel("control");
    agentControl.onopen = () => agentCallStatus("connected", "On the call");
    agentControl.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === "hangup") endBrowserCall("the caller hung up", false);
    };
    agentPc.ontrack = (event) => {
      const stream = event.streams[0] || new MediaStream([event.track]);
      document.getElementById("agent-remote").srcObject = stream;  // Chrome feeds WebAudio only from a playing stream
      agentMeasure(stream);
    };
    agentPc.onconnectionstatechange = () => {
      if (agentPc && (agentPc.connectionState === "failed" || agentPc.connectionState === "closed")) {
        endBrowserCall("connection lost", false);
      }
    };
    await agentPc.setLocalDescription(await agentPc.createOffer());
    await agentIceGathered(agentPc, 3000);
    const response = await fetch("/agents/" + encodeURIComponent(agent) + "/answer", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token },
      body: JSON.stringify({ assignment, type: "offer", sdp: agentPc.localDescription.sdp }),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || ("HTTP " + response.status));
    agentCall.leg = answer.leg;
    await agentPc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
  } catch (error) {
    agentCall.error = String(error);
    endBrowserCall("could not connect: " + error.message, false);
  }
}

function endBrowserCall(reason, tellServer) {
  if (agentCall.state === "ended" || agentCall.state === "idle") return;
  if (tellServer && agentControl && agentControl.readyState === "open") {
    agentControl.send(JSON.stringify({ type: "hangup", reason: "agent hung up" }));
  }
  agentCall.hangupReason = reason;
  const peer = agentPc;
  agentPc = null;
  clearInterval(agentLevelTimer);
  setTimeout(() => { if (peer) peer.close(); }, tellServer ? 200 : 0);  // let the hang-up message leave first
  if (agentMic) agentMic.getTracks().forEach((track) => track.stop());
  if (agentAudio) agentAudio.close();
  agentCallStatus("ended", "Call ended: " + reason);
}
