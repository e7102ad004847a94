// The dashboard's logic: log in with a bearer token (kept for this tab only),
// poll the daemon's REST API each second for the VM list and each running
// VM's stats, draw the selected VM's CPU and memory graphs, run the lifecycle
// buttons, and show its serial console in xterm.js over the console WebSocket.
"use strict";

const POLL_MS = 1000;
const HISTORY = 120;  // samples kept per VM for the graphs
const TRANSCRIPT = 64 * 1024;

const state = {
  token: sessionStorage.getItem("strata-token") || "",
  vms: [],
  samples: new Map(),  // VM name -> [{t, cpu (%), residentMib}]
  last: new Map(),     // VM name -> previous stats reading
  selected: null,
  console: null,       // {ws, term, name}
  poller: null,
};

// What the console received, as text: for people who copy and for the browser test.
window.strataConsole = { transcript: "", state: "closed", name: null };

const $ = (id) => document.getElementById(id);

async function api(method, path) {
  const response = await fetch(path, { method, headers: { Authorization: `Bearer ${state.token}` } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status}: ${body.error || "no reason given"}`);
  return body;
}

function showError(error) {
  $("error").textContent = error ? String(error.message || error) : "";
}

async function logIn(token) {
  state.token = token;
  try {
    await api("GET", "/vms");
  } catch (error) {
    $("login-error").textContent = error.message;
    return;
  }
  sessionStorage.setItem("strata-token", token);
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = "logged in";
  await refresh();
  state.poller = setInterval(refresh, POLL_MS);
}

function logOut() {
  sessionStorage.removeItem("strata-token");
  location.reload();
}

async function refresh() {
  try {
    state.vms = await api("GET", "/vms");
    await Promise.all(state.vms.filter((vm) => vm.state === "running").map(sample));
    showError(null);
  } catch (error) {
    showError(error);
  }
  renderTable();
  if (state.selected) renderGraphs(state.selected);
}

// One stats reading; CPU is the rise in the process's CPU seconds over the wall time between two readings.
async function sample(vm) {
  const stats = await api("GET", `/vms/${encodeURIComponent(vm.name)}/stats`).catch(() => null);
  if (!stats) return;
  const now = performance.now() / 1000;
  const previous = state.last.get(vm.name);
  state.last.set(vm.name, { t: now, cpu: stats.cpu_seconds });
  if (!previous || stats.cpu_seconds < previous.cpu) return;
  const history = state.samples.get(vm.name) || [];
  history.push({
    t: now,
    cpu: (100 * (stats.cpu_seconds - previous.cpu)) / Math.max(now - previous.t, 1e-3),
    residentMib: stats.resident_bytes / (1024 * 1024),
  });
  state.samples.set(vm.name, history.slice(-HISTORY));
}

const ACTIONS = [
  { action: "start", label: "Start", when: (vm) => vm.state === "stopped", method: "POST" },
  { action: "shutdown", label: "Stop", when: (vm) => vm.state === "running" || vm.state === "paused", method: "POST" },
  { action: "destroy", label: "Kill", when: (vm) => vm.state !== "stopped", method: "POST" },
  { action: "snapshot", label: "Snapshot", when: (vm) => vm.state === "running", method: "POST" },
];

function renderTable() {
  const body = $("vms").querySelector("tbody");
  body.replaceChildren(
    ...state.vms.map((vm) => {
      const row = document.createElement("tr");
      row.dataset.vm = vm.name;
      const latest = (state.samples.get(vm.name) || []).at(-1);
      const running = vm.state === "running";
      const cells = [
        vm.name, vm.tenant, vm.state, vm.cpus, `${vm.memory_mib} MiB`,
        running && latest ? `${latest.cpu.toFixed(0)} %` : "",
        running && latest ? `${latest.residentMib.toFixed(0)} MiB` : "",
      ];
      for (const text of cells) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      row.children[2].className = `state-${vm.state}`;
      const buttons = document.createElement("td");
      for (const { action, label, when, method } of ACTIONS) {
        if (!when(vm)) continue;
        buttons.append(button(label, vm.name, action, () => act(vm.name, method, action)));
      }
      buttons.append(button("Open", vm.name, "open", () => select(vm.name)));
      row.append(buttons);
      if (vm.name === state.selected) row.className = "selected";
      return row;
    })
  );
}

function button(label, vmName, action, onClick) {
  const element = document.createElement("button");
  element.textContent = label;
  element.dataset.vm = vmName;
  element.dataset.action = action;
  element.addEventListener("click", onClick);
  return element;
}

async function act(name, method, action) {
  try {
    const result = await api(method, `/vms/${encodeURIComponent(name)}/${action}`);
    if (action === "snapshot") showError(`snapshot ${result.snapshot} of ${name} is being taken into ${result.dir}`);
    if (action === "start" && state.selected === name) openConsole(name);
  } catch (error) {
    showError(error);
  }
  await refresh();
}

function select(name) {
  state.selected = name;
  $("detail").hidden = false;
  $("detail-name").textContent = name;
  renderTable();
  renderGraphs(name);
  openConsole(name);
}

function renderGraphs(name) {
  const history = state.samples.get(name) || [];
  drawGraph($("cpu-graph"), history.map((s) => s.cpu), 100, "%");
  drawGraph($("memory-graph"), history.map((s) => s.residentMib), 64, " MiB");
}

// A line over the last HISTORY samples; the scale grows to the largest value shown.
function drawGraph(canvas, values, minimumScale, unit) {
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  const scale = Math.max(minimumScale, ...values) * 1.1;
  context.strokeStyle = "#ccc";
  context.strokeRect(0.5, 0.5, width - 1, height - 1);
  context.fillStyle = "#555";
  context.font = "11px sans-serif";
  context.fillText(`${scale.toFixed(0)}${unit}`, 4, 12);
  if (values.length) context.fillText(`now ${values.at(-1).toFixed(1)}${unit}`, width - 110, 12);
  context.strokeStyle = "#2a6db0";
  context.lineWidth = 2;
  context.beginPath();
  values.forEach((value, index) => {
    const x = width - (values.length - 1 - index) * (width / (HISTORY - 1));
    const y = height - (value / scale) * height;
    if (index === 0) context.moveTo(x, y);
    else context.lineTo(x, y);
  });
  context.stroke();
}

let Terminal = null;

async function openConsole(name) {
  if (state.console) {
    state.console.ws.close();
    state.console.term.destroy();
    state.console = null;
  }
  const vm = state.vms.find((v) => v.name === name);
  if (!vm || vm.state !== "running") {
    $("console-status").textContent = `${name} is ${vm ? vm.state : "gone"}: start it to use its console`;
    return;
  }
  Terminal = Terminal || (await commonjs.loadModule("xterm/lib/public/Terminal.js")).Terminal;
  const term = new Terminal({ cols: 100, rows: 30 });
  term.open($("terminal"));
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // A browser cannot set headers on a WebSocket: the token travels as a subprotocol.
  const ws = new WebSocket(`${scheme}://${location.host}/vms/${encodeURIComponent(name)}/console`, [
    "strata.console",
    `bearer.${state.token}`,
  ]);
  ws.binaryType = "arraybuffer";
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  Object.assign(window.strataConsole, { transcript: "", state: "connecting", name });
  ws.onopen = () => {
    window.strataConsole.state = "open";
    $("console-status").textContent = `console of ${name} (click it and type)`;
    term.focus();
  };
  ws.onmessage = (event) => {
    const text = decoder.decode(new Uint8Array(event.data), { stream: true });
    term.write(text);
    window.strataConsole.transcript = (window.strataConsole.transcript + text).slice(-TRANSCRIPT);
  };
  ws.onclose = (event) => {
    window.strataConsole.state = "closed";
    $("console-status").textContent = `console of ${name} closed${event.reason ? ": " + event.reason : ""}`;
  };
  term.on("data", (data) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
  });
  state.console = { ws, term, name };
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  logIn($("token").value.trim());
});
$("logout").addEventListener("click", logOut);
if (state.token) logIn(state.token);
