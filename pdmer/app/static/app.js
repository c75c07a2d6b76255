// The pdmer listener app: plain JavaScript, no build step, no network beyond this server.
"use strict";

const FRAME = 0.5;                       // seconds per label frame (2 Hz)
const SAMPLE_MS = 20;                    // how often the pad is read while the music plays
const COLORS = {arousal: "#d1495b", valence: "#2e86ab", grid: "#d5dbe3", text: "#5b6677"};
const $ = (id) => document.getElementById(id);

const state = {token: localStorage.getItem("pdmer-token"), info: null, me: null, cleanup: null};

// ------------------------------------------------------------------ server
async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const response = await fetch("/api" + path, Object.assign({}, options, {headers}));
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (err) { /* not JSON: keep the status text */ }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

async function audioUrl(songId) {
  // <audio src> cannot send the token, so fetch the file and play it from memory.
  const response = await fetch(`/api/songs/${songId}/audio`,
                               {headers: {Authorization: "Bearer " + state.token}});
  if (!response.ok) throw new Error(`The audio did not load (${response.status}).`);
  return URL.createObjectURL(await response.blob());
}

function say(id, text, isError = false) {
  const element = $(id);
  element.textContent = text;
  element.classList.toggle("error", isError);
}

// ------------------------------------------------------------------ routes
// Each route() call takes a number; one that finds a newer call started
// while it awaited the server leaves the page to that one, so overlapping
// navigations never render a view twice.
let routeCalls = 0;

async function route() {
  const call = ++routeCalls;
  if (state.cleanup) { state.cleanup(); state.cleanup = null; }
  for (const section of document.querySelectorAll("main > section")) section.hidden = true;
  if (!state.info) state.info = await api("/info");
  if (call !== routeCalls) return;
  if (!state.token) return show("start");
  try {
    await refreshMe();
  } catch (err) {
    if (err.status === 401) { forgetToken(); return show("start"); }
    throw err;
  }
  if (call !== routeCalls) return;
  const [, view, id] = (location.hash || "#/songs").split("/");
  if (view === "annotate") return openAnnotate(Number(id));
  if (view === "listen") return openListen(Number(id));
  return openSongs();
}

function show(name) {
  $("view-" + name).hidden = false;
  $("who").hidden = name === "start";
}

async function refreshMe() {
  state.me = await api("/me");
  $("listener-name").textContent = state.me.name;
  const personalized = state.me.adaptation !== null;
  $("listener-status").textContent = personalized ? "personalized" : "not personalized yet";
  $("listener-status").classList.toggle("ok", personalized);
}

function forgetToken() {
  state.token = null;
  localStorage.removeItem("pdmer-token");
}

function useToken(token) {
  state.token = token;
  localStorage.setItem("pdmer-token", token);
  // A new hash fires hashchange, whose handler routes; routing here as well
  // listed every song twice on a listener's first visit.
  if (location.hash === "#/songs") route().catch(showError);
  else location.hash = "#/songs";
}

$("new-listener").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const created = await api("/listeners", {
      method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({name: $("new-name").value})});
    useToken(created.token);
  } catch (err) { say("start-message", err.message, true); }
});
$("use-token").addEventListener("submit", (event) => {
  event.preventDefault();
  useToken($("token-input").value.trim());
});
$("switch-listener").addEventListener("click", () => { forgetToken(); route(); });

// ------------------------------------------------------------------- songs
async function openSongs() {
  show("songs");
  $("token-shown").textContent = state.token;
  const body = $("songs").querySelector("tbody");
  body.replaceChildren();
  const songs = await api("/songs");
  // Rows replace, never add to, what is there: the table shows one list
  // even if another openSongs() filled it while this one awaited the server.
  const rows = [];
  for (const song of songs) {
    const row = document.createElement("tr");
    rows.push(row);
    row.dataset.songId = song.id;
    row.insertCell().textContent = song.title;
    row.insertCell().textContent = minutes(song.duration);
    const notes = [];
    if (song.annotated) notes.push("annotated by you");
    if (song.uploaded) notes.push("your upload");
    row.insertCell().textContent = notes.join(", ");
    const links = row.insertCell();
    links.append(link(`#/annotate/${song.id}`, "Annotate", "annotate-link"),
                 link(`#/listen/${song.id}`, "Listen", "listen-link"));
  }
  body.replaceChildren(...rows);
}

function link(href, text, className) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  a.className = className;
  return a;
}

function minutes(seconds) {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

$("upload-song").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $("song-file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("audio", file, file.name);
  say("songs-message", "Uploading and analysing…");
  try {
    const song = await api("/songs", {method: "POST", body: form});
    say("songs-message", `Added ${song.title}.`);
    openSongs();
  } catch (err) { say("songs-message", err.message, true); }
});

// ---------------------------------------------------------------- annotate
const pad = {arousal: 0, valence: 0};
const annotation = {song: null, frames: [], visit: 0};

function clamp(x) { return Math.max(-1, Math.min(1, x)); }

function setPad(arousal, valence) {
  pad.arousal = clamp(arousal);
  pad.valence = clamp(valence);
  $("arousal").value = pad.arousal;
  $("valence").value = pad.valence;
  drawPad();
}

function padFromPointer(event) {
  const box = $("pad").getBoundingClientRect();
  setPad(1 - 2 * (event.clientY - box.top) / box.height,
         2 * (event.clientX - box.left) / box.width - 1);
}

$("pad").addEventListener("pointerdown", (event) => {
  $("pad").setPointerCapture(event.pointerId);
  padFromPointer(event);
});
$("pad").addEventListener("pointermove", (event) => {
  if (event.buttons) padFromPointer(event);
});
$("arousal").addEventListener("input", () => setPad(Number($("arousal").value), pad.valence));
$("valence").addEventListener("input", () => setPad(pad.arousal, Number($("valence").value)));

function sampleAnnotation() {
  // The audio clock, not the wall clock: frame i is the music's
  // [offset + 0.5 i, offset + 0.5 (i + 1)) s, whenever and however often it plays.
  const audio = $("annotate-audio");
  if (audio.paused || audio.seeking || audio.ended || !annotation.song) return;
  const t = audio.currentTime - state.info.frame_offset;
  const i = Math.floor(t / FRAME);
  if (t < 0 || i >= annotation.song.n_frames) return;
  let frame = annotation.frames[i];
  if (!frame || frame.visit !== annotation.visit) {
    // Playing a frame again after a seek replaces what was drawn there.
    frame = annotation.frames[i] = {visit: annotation.visit, arousal: 0, valence: 0, n: 0};
  }
  frame.arousal += pad.arousal;
  frame.valence += pad.valence;
  frame.n += 1;
}

function annotatedFrames() {
  const out = [];
  annotation.frames.forEach((frame, i) => {
    if (frame && frame.n) out.push({i, arousal: frame.arousal / frame.n, valence: frame.valence / frame.n});
  });
  return out;
}

function annotationCsv() {
  const frames = annotatedFrames();
  const offset = state.info.frame_offset;
  const lines = ["time,arousal,valence"];
  frames.forEach((frame, k) => {
    if (k > 0 && frame.i !== frames[k - 1].i + 1) {
      const from = offset + FRAME * (frames[k - 1].i + 1), to = offset + FRAME * frame.i;
      throw new Error(`The music from ${from.toFixed(1)} s to ${to.toFixed(1)} s is not ` +
                      "annotated: seek back and play it, or start over.");
    }
    lines.push(`${(offset + FRAME * frame.i).toFixed(3)},${frame.arousal.toFixed(4)},` +
               `${frame.valence.toFixed(4)}`);
  });
  return lines.join("\n") + "\n";
}

async function openAnnotate(songId) {
  show("annotate");
  const song = await api(`/songs/${songId}`);
  Object.assign(annotation, {song, frames: [], visit: 0});
  document.querySelectorAll("#view-annotate .song-title").forEach((e) => { e.textContent = song.title; });
  $("frames-total").textContent = song.n_frames;
  const offset = state.info.frame_offset;
  say("annotate-message", offset > 0 ? `The curve starts at ${offset} s of the music, ` +
      "where the model's labels start." : "");
  say("job-status", "");
  $("job-progress").hidden = true;
  setPad(0, 0);
  const audio = $("annotate-audio");
  audio.src = await audioUrl(songId);
  const onSeek = () => { annotation.visit += 1; };
  audio.addEventListener("seeking", onSeek);
  const timer = setInterval(sampleAnnotation, SAMPLE_MS);
  let drawing = true;
  const draw = () => {
    if (!drawing) return;
    const frames = annotatedFrames();
    $("frames-done").textContent = frames.length;
    $("seconds-done").textContent = (frames.length * FRAME).toFixed(1);
    $("submit-annotation").disabled = frames.length === 0;
    drawCurves($("annotate-curve"), song.n_frames, [
      {name: "arousal", color: COLORS.arousal, points: frames.map((f) => [f.i, f.arousal])},
      {name: "valence", color: COLORS.valence, points: frames.map((f) => [f.i, f.valence])},
    ], audio.currentTime);
    requestAnimationFrame(draw);
  };
  requestAnimationFrame(draw);
  state.cleanup = () => {
    drawing = false;
    clearInterval(timer);
    audio.removeEventListener("seeking", onSeek);
    audio.pause();
    URL.revokeObjectURL(audio.src);
  };
}

$("clear-annotation").addEventListener("click", () => {
  annotation.frames = [];
  say("annotate-message", "");
});

$("submit-annotation").addEventListener("click", async () => {
  $("annotate-audio").pause();
  let csv;
  try { csv = annotationCsv(); } catch (err) { return say("annotate-message", err.message, true); }
  const form = new FormData();
  form.append("labels", new Blob([csv], {type: "text/csv"}), "annotation.csv");
  say("annotate-message", "Sending…");
  try {
    const created = await api(`/songs/${annotation.song.id}/annotations`, {method: "POST", body: form});
    say("annotate-message", `Saved ${created.annotation.n_frames} frames.`);
    $("annotate-message").dataset.annotationId = created.annotation.id;
    if (created.job) await followJob(created.job.id);
  } catch (err) { say("annotate-message", err.message, true); }
});

async function followJob(jobId) {
  const bar = $("job-progress");
  bar.hidden = false;
  for (;;) {
    const job = await api(`/jobs/${jobId}`);
    bar.max = job.total || 1;
    bar.value = job.step;
    $("job-status").dataset.status = job.status;
    if (job.status === "done") {
      say("job-status", "Personalized. Listen to another song to see your curves.");
      await refreshMe();
      return;
    }
    if (job.status === "failed") return say("job-status", "Personalization failed: " + job.error, true);
    say("job-status", job.status === "queued" ? "Personalization is waiting for the model…"
        : `Personalizing: step ${job.step} of ${job.total}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

// ------------------------------------------------------------------ listen
async function openListen(songId) {
  show("listen");
  const song = await api(`/songs/${songId}`);
  document.querySelectorAll("#view-listen .song-title").forEach((e) => { e.textContent = song.title; });
  say("listen-message", "Computing the curves…");
  const [curves, url] = await Promise.all([api(`/songs/${songId}/predictions`), audioUrl(songId)]);
  const audio = $("listen-audio");
  audio.src = url;
  say("listen-message", curves.personal ? "" :
      "You are not personalized yet: annotate a song first. Showing everyone's curves.");
  const n = curves.population.arousal.length;
  const series = (curve, dash, who) => curve ? [
    {name: `arousal (${who})`, color: COLORS.arousal, dash, points: curve.arousal.map((v, i) => [i, v])},
    {name: `valence (${who})`, color: COLORS.valence, dash, points: curve.valence.map((v, i) => [i, v])},
  ] : [];
  const lines = [...series(curves.personal, [], "you"), ...series(curves.population, [6, 4], "everyone")];
  let drawing = true;
  const draw = () => {
    if (!drawing) return;
    const t = audio.currentTime;
    const i = Math.max(0, Math.min(n - 1, Math.floor((t - curves.frame_offset) / FRAME)));
    $("listen-time").textContent = t.toFixed(1);
    for (const [who, curve] of [["personal", curves.personal], ["population", curves.population]]) {
      for (const dimension of ["arousal", "valence"]) {
        const cell = $(`${who}-${dimension}`);
        cell.textContent = curve ? curve[dimension][i].toFixed(3) : "–";
        cell.dataset.frame = i;
      }
    }
    drawCurves($("listen-curves"), n, lines, t);
    drawPlane($("listen-plane"), [
      curves.personal && {color: "#2458c6", curve: curves.personal, label: "you"},
      {color: "#8a94a6", curve: curves.population, label: "everyone"},
    ].filter(Boolean), i);
    requestAnimationFrame(draw);
  };
  requestAnimationFrame(draw);
  state.cleanup = () => { drawing = false; audio.pause(); URL.revokeObjectURL(audio.src); };
}

// ---------------------------------------------------------------- drawing
function drawPad() {
  const canvas = $("pad");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  planeAxes(ctx, w, h);
  const x = (pad.valence + 1) / 2 * w, y = (1 - pad.arousal) / 2 * h;
  ctx.fillStyle = "#2458c6";
  ctx.beginPath();
  ctx.arc(x, y, 9, 0, 2 * Math.PI);
  ctx.fill();
}

function planeAxes(ctx, w, h) {
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#fbfcfd";
  ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = COLORS.grid;
  ctx.lineWidth = 1;
  ctx.strokeRect(0.5, 0.5, w - 1, h - 1);
  ctx.beginPath();
  ctx.moveTo(w / 2, 0); ctx.lineTo(w / 2, h);
  ctx.moveTo(0, h / 2); ctx.lineTo(w, h / 2);
  ctx.stroke();
  ctx.fillStyle = COLORS.text;
  ctx.font = "12px system-ui, sans-serif";
  // Named as pdmer's plots name them (pdmer.labels.QUADRANTS, served by /api/info).
  for (const [name, [valence, arousal]] of Object.entries(state.info.quadrants)) {
    ctx.textAlign = valence > 0 ? "right" : "left";
    ctx.fillText(name, valence > 0 ? w - 8 : 8, arousal > 0 ? 18 : h - 10);
  }
  ctx.textAlign = "center";
  ctx.fillText("arousal ↑", w / 2 + 30, 14);
  ctx.fillText("valence →", w - 40, h / 2 - 6);
}

function drawPlane(canvas, trails, i) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  planeAxes(ctx, w, h);
  const at = (curve, k) => [(curve.valence[k] + 1) / 2 * w, (1 - curve.arousal[k]) / 2 * h];
  trails.forEach((trail, t) => {
    ctx.strokeStyle = trail.color;
    ctx.lineWidth = 2;
    ctx.globalAlpha = 0.25;
    path(ctx, trail.curve.arousal.map((_, k) => at(trail.curve, k)));
    ctx.globalAlpha = 1;
    path(ctx, trail.curve.arousal.slice(0, i + 1).map((_, k) => at(trail.curve, k)));
    const [x, y] = at(trail.curve, i);
    ctx.fillStyle = trail.color;
    ctx.beginPath();
    ctx.arc(x, y, 7, 0, 2 * Math.PI);
    ctx.fill();
    ctx.textAlign = "right";
    ctx.fillText("● " + trail.label, w - 8, h - 30 - 16 * t);
  });
}

function path(ctx, points) {
  ctx.beginPath();
  points.forEach(([x, y], k) => (k ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.stroke();
}

function drawCurves(canvas, nFrames, lines, now) {
  // Frame i is drawn at the start of its audio, offset + 0.5 i seconds.
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  const left = 36, right = 10, top = 28, bottom = 24;
  const offset = state.info.frame_offset;
  const span = Math.max(nFrames, 1) * FRAME;
  const x = (seconds) => left + (seconds - offset) / span * (w - left - right);
  const y = (value) => top + (1 - value) / 2 * (h - top - bottom);
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = COLORS.grid;
  ctx.fillStyle = COLORS.text;
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  for (const v of [-1, -0.5, 0, 0.5, 1]) {
    ctx.beginPath(); ctx.moveTo(left, y(v)); ctx.lineTo(w - right, y(v)); ctx.stroke();
    ctx.fillText(String(v), left - 4, y(v) + 4);
  }
  ctx.textAlign = "center";
  const step = span > 120 ? 30 : span > 40 ? 10 : span > 10 ? 5 : 1;
  for (let s = Math.ceil(offset / step) * step; s <= offset + span; s += step) {
    ctx.fillText(`${s}s`, x(s), h - 6);
  }
  let legend = left;
  for (const line of lines) {
    ctx.strokeStyle = line.color;
    ctx.setLineDash(line.dash || []);
    ctx.lineWidth = 2;
    path(ctx, line.points.map(([i, v]) => [x(offset + FRAME * i), y(v)]));
    ctx.beginPath(); ctx.moveTo(legend, 12); ctx.lineTo(legend + 18, 12); ctx.stroke();
    ctx.setLineDash([]);
    ctx.textAlign = "left";
    ctx.fillStyle = COLORS.text;
    ctx.fillText(line.name, legend + 22, 16);
    legend += 30 + ctx.measureText(line.name).width;
  }
  if (now >= offset) {
    ctx.strokeStyle = "#1d2430";
    ctx.lineWidth = 1;
    ctx.beginPath(); ctx.moveTo(x(now), top - 4); ctx.lineTo(x(now), h - bottom); ctx.stroke();
  }
}

window.addEventListener("hashchange", () => route().catch(showError));
route().catch(showError);

function showError(err) {
  const visible = document.querySelector("main > section:not([hidden]) .message");
  if (visible) say(visible.id, err.message, true);
  else console.error(err);
}
