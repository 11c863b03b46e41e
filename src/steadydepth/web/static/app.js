// steadydepth serve: upload, progress, results. Plain JavaScript and WebGL, nothing loaded from elsewhere.
"use strict";
const $ = (id) => document.getElementById(id);
const LABELS = {
  "depth.npz": "depth.npz — all frames (float32 z-depth, confidence, cameras)",
  "depth_png16.zip": "depth_png16.zip — 16-bit PNG per frame",
  "cameras.json": "cameras.json — intrinsics and camera-to-world poses",
  "depth_vis.mp4": "depth_vis.mp4 — the depth video",
  "scene.glb": "scene.glb — the fused scene (mesh, for web viewers and Blender)",
  "scene.ply": "scene.ply — the fused scene (mesh)",
};
let poll = null;

function show(section) {
  for (const id of ["start", "progress", "result"]) $(id).hidden = id !== section;
}

function message(text) { $("message").textContent = text || ""; }

async function answer(response) {
  let body = {};
  try { body = await response.json(); } catch (e) { body = { error: `server answered ${response.status}` }; }
  if (!response.ok) throw new Error(body.error || `server answered ${response.status}`);
  return body;
}

async function upload(file) {
  message("");
  if (window.limits && file.size > window.limits.max_upload_bytes) {
    message(`${file.name} is ${(file.size / 1e6).toFixed(1)} MB; this server takes at most ${(window.limits.max_upload_bytes / 1e6).toFixed(1)} MB`);
    return;
  }
  $("status").textContent = "uploading…";
  show("progress");
  try {
    const job = await answer(await fetch("/api/jobs", { method: "POST", body: file }));
    follow(job.id);
  } catch (e) { show("start"); message(e.message); }
}

async function example() {
  message("");
  $("status").textContent = "making the example clip…";
  show("progress");
  try { follow((await answer(await fetch("/api/example", { method: "POST" }))).id); }
  catch (e) { show("start"); message(e.message); }
}

function describe(s) {
  if (s.state === "queued") return `waiting in the queue (position ${s.queue_position})`;
  let text = `${s.frames_done}/${s.frames_total ?? "?"} frames`;
  if (s.fps) text += ` · ${s.fps.toFixed(2)} frames/s`;
  if (s.eta_s != null) text += ` · ${Math.round(s.eta_s)} s left`;
  return `${text} · ${s.stage}`;
}

function follow(id) {
  clearInterval(poll);
  const tick = async () => {
    let s;
    try { s = await answer(await fetch(`/api/jobs/${id}`)); }
    catch (e) { clearInterval(poll); show("start"); message(e.message); return; }
    $("status").textContent = describe(s);
    $("bar").value = s.frames_total ? s.frames_done / s.frames_total : 0;
    if (s.state === "failed") { clearInterval(poll); show("start"); message(s.error); }
    if (s.state === "done") { clearInterval(poll); results(s); }
  };
  poll = setInterval(tick, 500);
  tick();
}

function results(s) {
  show("result");
  const base = `/api/jobs/${s.id}/files/`;
  const list = $("downloads");
  list.innerHTML = "";
  for (const name of s.downloads) {
    if (!(name in LABELS)) continue;
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = base + name; a.textContent = LABELS[name]; a.setAttribute("download", name);
    li.appendChild(a); list.appendChild(li);
  }
  const video = $("depth-video");
  if (s.downloads.includes("depth_vis.mp4")) { video.src = base + "depth_vis.mp4"; video.play().catch(() => {}); }
  if (s.downloads.includes("points.bin")) {
    fetch(base + "points.bin").then((r) => r.arrayBuffer()).then((buf) => view3d($("view3d"), buf));
  }
}

// ---- a small WebGL point cloud view (world y points down: the up direction is -y) ----
function parsePoints(buf) {
  const magic = new TextDecoder().decode(new Uint8Array(buf, 0, 4));
  if (magic !== "SDP1") throw new Error("not a points file");
  const n = new DataView(buf).getUint32(4, true);
  return { n, xyz: new Float32Array(buf, 8, 3 * n), rgb: new Uint8Array(buf, 8 + 12 * n, 3 * n) };
}

function perspective(fovy, aspect, near, far) {
  const f = 1 / Math.tan(fovy / 2), nf = 1 / (near - far);
  return [f / aspect, 0, 0, 0, 0, f, 0, 0, 0, 0, (far + near) * nf, -1, 0, 0, 2 * far * near * nf, 0];
}

function lookAt(eye, target, up) {
  const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
  const norm = (a) => { const l = Math.hypot(...a) || 1; return [a[0] / l, a[1] / l, a[2] / l]; };
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const z = norm(sub(eye, target)), x = norm(cross(up, z)), y = cross(z, x);
  return [x[0], y[0], z[0], 0, x[1], y[1], z[1], 0, x[2], y[2], z[2], 0, -dot(x, eye), -dot(y, eye), -dot(z, eye), 1];
}

function multiply(a, b) {  // column-major 4x4: a * b
  const out = new Array(16).fill(0);
  for (let c = 0; c < 4; c++) for (let r = 0; r < 4; r++) for (let k = 0; k < 4; k++) out[c * 4 + r] += a[k * 4 + r] * b[c * 4 + k];
  return out;
}

function view3d(canvas, buf) {
  const { n, xyz, rgb } = parsePoints(buf);
  const gl = canvas.getContext("webgl", { preserveDrawingBuffer: true, antialias: false });
  if (!gl) { canvas.replaceWith(Object.assign(document.createElement("p"), { textContent: "this browser has no WebGL" })); return; }
  const shader = (type, src) => { const s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s); return s; };
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER,
    "attribute vec3 p; attribute vec3 c; uniform mat4 m; uniform float s; varying vec3 v;" +
    "void main(){ gl_Position = m * vec4(p, 1.0); gl_PointSize = s; v = c; }"));
  gl.attachShader(prog, shader(gl.FRAGMENT_SHADER,
    "precision mediump float; varying vec3 v; void main(){ gl_FragColor = vec4(v, 1.0); }"));
  gl.linkProgram(prog);
  gl.useProgram(prog);
  const bind = (name, data, size, type, normalized) => {
    const b = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, b); gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(prog, name); gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, size, type, normalized, 0, 0);
  };
  bind("p", xyz, 3, gl.FLOAT, false);
  bind("c", rgb, 3, gl.UNSIGNED_BYTE, true);
  // centre: the median point; radius: the 90th percentile of distances to it
  const axis = (k) => { const v = []; for (let i = k; i < 3 * n; i += 3 * Math.max(1, Math.floor(n / 5000))) v.push(xyz[i]); v.sort((a, b) => a - b); return v; };
  const centre = [0, 1, 2].map((k) => { const v = axis(k); return v.length ? v[v.length >> 1] : 0; });
  const dists = [];
  for (let i = 0; i < n; i += Math.max(1, Math.floor(n / 5000))) dists.push(Math.hypot(xyz[3 * i] - centre[0], xyz[3 * i + 1] - centre[1], xyz[3 * i + 2] - centre[2]));
  dists.sort((a, b) => a - b);
  const radius = dists.length ? Math.max(1e-6, dists[Math.floor(0.9 * (dists.length - 1))]) : 1;
  let yaw = 0, pitch = -0.25, distance = 2.2 * radius, dragging = null, touched = false;
  const loc = { m: gl.getUniformLocation(prog, "m"), s: gl.getUniformLocation(prog, "s") };
  let frames = 0;
  const draw = () => {
    const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    gl.viewport(0, 0, canvas.width, canvas.height);
    gl.clearColor(0.07, 0.07, 0.07, 1); gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT); gl.enable(gl.DEPTH_TEST);
    // orbit around the centre; yaw 0 looks along +z (where the cameras look), up is -y
    const dir = [Math.sin(yaw) * Math.cos(pitch), Math.sin(pitch), Math.cos(yaw) * Math.cos(pitch)];
    const eye = [centre[0] - distance * dir[0], centre[1] + distance * dir[1], centre[2] - distance * dir[2]];
    const mvp = multiply(perspective(0.9, canvas.width / canvas.height, distance / 100, distance * 10), lookAt(eye, centre, [0, -1, 0]));
    gl.uniformMatrix4fv(loc.m, false, new Float32Array(mvp));
    // points about as large as their spacing on screen: a sparse fused cloud (one point per voxel)
    // reads as a surface, a dense per-frame cloud stays fine-grained
    const spacing = 0.4 * canvas.width * Math.sqrt(Math.PI / Math.max(n, 1)) * (2.2 * radius / distance);
    gl.uniform1f(loc.s, Math.min(8.0, Math.max(1.5, spacing, 2.5 * (canvas.width / 640))));
    gl.drawArrays(gl.POINTS, 0, n);
    frames += 1;
    window.steadydepthView = { points: n, frames };
  };
  const animate = () => { if (!touched) { yaw += 0.004; } draw(); requestAnimationFrame(animate); };
  canvas.addEventListener("pointerdown", (e) => { dragging = [e.clientX, e.clientY]; touched = true; canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", () => { dragging = null; });
  canvas.addEventListener("pointermove", (e) => {
    if (!dragging) return;
    yaw += (e.clientX - dragging[0]) * 0.01; pitch = Math.max(-1.5, Math.min(1.5, pitch + (e.clientY - dragging[1]) * 0.01));
    dragging = [e.clientX, e.clientY];
  });
  canvas.addEventListener("wheel", (e) => { e.preventDefault(); touched = true; distance *= Math.exp(e.deltaY * 0.001); }, { passive: false });
  animate();
}

// ---- wiring ----
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]); });
$("file").addEventListener("change", (e) => { if (e.target.files.length) upload(e.target.files[0]); });
$("example").addEventListener("click", example);
$("again").addEventListener("click", () => { show("start"); $("file").value = ""; });
fetch("/api/limits").then((r) => r.json()).then((l) => {
  window.limits = l;
  $("limits").textContent = `at most ${(l.max_upload_bytes / 1e6).toFixed(0)} MB and ${l.max_frames} frames`;
});
show("start");
