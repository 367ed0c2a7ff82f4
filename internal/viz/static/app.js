// synod-viz page. All protocol work happens on the server, in the real synod
// code; this script only renders the session's view and posts the reader's
// choices. No framework, no build step.
"use strict";

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const state = { id: null, view: null, sources: [], shown: { engine: null, state: null }, auto: null, es: null, live: null };

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opts);
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}

async function post(req) {
  try {
    return await api(`/api/sessions/${state.id}/do`, req);
  } catch (e) {
    stopAuto();
    return { error: e.message };
  }
}

function act(choice) { return post({ op: "choice", choice }); }

// ---- rendering ----

function render(v) {
  state.view = v;
  document.body.dataset.step = v.step;
  $("#stepno").textContent = v.step;
  $("#seedno").textContent = v.seed;
  $("#quiet").textContent = v.quiet ? "quiet: nothing in flight, every proposer idle" : `${v.messages.length} message(s) in flight`;
  $("#quiet").className = v.quiet ? "ok" : "";
  $("#next").textContent = v.scriptLeft ? `· ${v.scriptLeft} scripted step(s) left, next: ${describeChoice(v.next)}` : "";
  const m = $("#message");
  m.textContent = v.message || "";
  m.className = (v.message || "").startsWith("refused") ? "refused" : "";
  const si = v.scenarioInfo;
  $("#scenario-info").innerHTML = si ? `<b>${esc(si.title)}</b> — expected outcome: ${esc(si.outcome)}` : "";
  $("#export").href = `/api/sessions/${state.id}/export`;
  renderProposers(v);
  renderAcceptors(v);
  renderMessages(v);
  renderOps(v);
  renderEvents(v);
  renderCode(v);
}

function describeChoice(c) {
  if (!c) return "";
  switch (c.act) {
    case "submit": return `p${c.proposer || 0} ${c.cmd}`;
    case "deliver": case "drop": case "dup": return `${c.act} #${c.msg}`;
    case "crash": case "restart": return `${c.act} ${c.acceptor}`;
    default: return `${c.act} p${c.proposer || 0}`;
  }
}

function renderProposers(v) {
  $("#proposer-cards").innerHTML = v.proposers.map((p) => {
    const cmds = `<div class="cmds">
      <button data-cmd="sign" data-proposer="${p.index}">${esc(p.general)}: sign</button>
      <button data-cmd="revoke" data-proposer="${p.index}">${esc(p.general)}: revoke</button>
      <button data-cmd="inc" data-proposer="${p.index}">counter +1</button></div>`;
    const cached = p.cached.length ? p.cached.map((c) => `<span class="ballot">${esc(c.key)} → ${esc(c.next)}</span> <small>(${esc(c.value)})</small>`).join("<br>") : "<small>none</small>";
    let cur = `<dt>proposal</dt><dd class="proposal">idle</dd>`;
    if (p.op) {
      const phase = p.status === "Accepting" ? "accepts" : "promises";
      cur = `<dt>proposal</dt><dd class="proposal">op ${p.op.id}: ${esc(p.op.cmd)} ${esc(p.op.key)}${p.op.fastPath ? " <small>(one round trip)</small>" : ""}</dd>
        <dt>status</dt><dd class="status status-${esc(p.status)}">${esc(p.status)}</dd>
        <dt>ballot</dt><dd class="ballot">${esc(p.ballot)}</dd>
        <dt>attempts</dt><dd class="attempts">${p.attempts}</dd>
        <dt>${phase}</dt><dd class="votes">${p.yes} of ${p.need} needed${p.no ? `, <span class="bad">${p.no} refused</span>` : ""}</dd>
        <dt>latest value</dt><dd class="latest">${esc(p.latest)} <small>at ${esc(p.latestBallot)}</small></dd>`;
    }
    const queue = p.queue.length ? `<dt>queued</dt><dd>${p.queue.map(esc).join("<br>")}</dd>` : "";
    const ctl = p.op ? `<div><button class="retry" data-act="retry" data-proposer="${p.index}" ${p.canRetry ? "" : "disabled"} title="Back off and retry with a higher ballot (after a refusal, or as a timeout)">${p.needsRetry ? "Retry (needed)" : "Retry / time out"}</button>
       <button class="abandon" data-act="abandon" data-proposer="${p.index}" ${p.canRetry ? "" : "disabled"}>Abandon (deadline)</button></div>` : "";
    return `<div class="card proposer" id="proposer-${p.index}"><h3><span>${esc(p.id)} — General ${esc(p.general)}</span></h3>${cmds}
      <dl class="kv">${cur}<dt>one-round-trip</dt><dd class="cached">${cached}</dd>${queue}</dl>${ctl}</div>`;
  }).join("");
}

function renderAcceptors(v) {
  $("#acceptor-cards").innerHTML = v.acceptors.map((a) => `<div class="card acceptor ${a.up ? "up" : "down"}" id="acceptor-${esc(a.id)}">
    <h3><span>${esc(a.id)} <small class="${a.up ? "ok" : "bad"}">${a.up ? "up" : "DOWN"}</small></span>
    ${a.up ? `<button data-act="crash" data-acceptor="${esc(a.id)}">Crash</button>` : `<button data-act="restart" data-acceptor="${esc(a.id)}">Restart</button>`}</h3>
    <table><thead><tr><th>key</th><th>promised</th><th>accepted</th><th>value</th></tr></thead><tbody>
    ${a.keys.map((k) => `<tr data-key="${esc(k.key)}"><td>${esc(k.key)}</td><td class="promised ballot">${esc(k.promised)}</td><td class="accepted ballot">${esc(k.accepted)}</td><td class="value${k.value.startsWith("LAUNCHED") ? " launched" : ""}">${esc(k.value)}</td></tr>`).join("")}
    </tbody></table></div>`).join("");
}

function renderMessages(v) {
  $("#msgcount").textContent = `(${v.messages.length})`;
  const next = v.next && ["deliver", "drop", "dup"].includes(v.next.act) ? v.next.msg : -1;
  $("#messages tbody").innerHTML = v.messages.map((m) => `<tr class="msg ${m.reply ? "reply" : "request"} ${m.kind === "refused" ? "refused" : ""} ${m.id === next ? "next" : ""}"
      data-id="${m.id}" data-kind="${esc(m.kind)}" data-from="${esc(m.from)}" data-to="${esc(m.to)}">
    <td>${m.id}</td><td class="kind">${esc(m.kind)}</td><td>${esc(m.from)} → ${esc(m.to)}</td><td>${esc(m.key)}</td><td class="ballot">${esc(m.ballot)}</td><td>${esc(m.detail)}</td>
    <td><button class="deliver" data-act="deliver" data-msg="${m.id}">deliver</button>
        <button class="drop" data-act="drop" data-msg="${m.id}">drop</button>
        ${m.reply ? `<button class="dup" data-act="dup" data-msg="${m.id}" title="The transport may deliver a reply twice">duplicate</button>`
          : `<button class="dup" disabled title="A transport delivers each request at most once (synod.Transport); only replies can be duplicated">duplicate</button>`}</td></tr>`).join("")
    || `<tr><td colspan="7"><small>nothing in flight</small></td></tr>`;
}

function renderOps(v) {
  $("#ops tbody").innerHTML = v.ops.map((o) => `<tr data-op="${o.id}" class="op ${o.state}">
    <td>${o.id}</td><td>${esc(o.who)} <small>${esc(o.proposer)}</small></td><td>${esc(o.cmd)}</td><td>${esc(o.key)}</td>
    <td>${o.call}–${o.return || "…"}</td><td class="attempts">${o.attempts}${o.fastPath ? " <small>(1st one round trip)</small>" : ""}</td><td>${o.ran}</td>
    <td class="result outcome-${esc(o.outcome || o.state)} ${o.outcome === "ok" ? "ok" : o.outcome ? "bad" : ""}">${o.state === "done" ? esc(o.result) : esc(o.state)}</td></tr>`).join("")
    || `<tr><td colspan="8"><small>no operations yet: give a general a command</small></td></tr>`;
}

function renderEvents(v) {
  $("#events").innerHTML = v.events.map((e, i) => `<li class="${i === 0 ? "latest" : ""}" value="${e.step}"><span class="act">[${esc(describeChoice(e.choice))}]</span> ${e.lines.map(esc).join("<br>")}</li>`).join("");
}

// ---- code panel ----

const KEYWORDS = /\b(func|return|if|else|switch|case|default|for|range|var|const|type|struct|map|nil|true|false|break|continue|delete|make|append|len|string)\b/g;

function highlight(src) {
  // Split off comments and strings first so keywords inside them stay plain.
  const out = [];
  const re = /(\/\/[^\n]*)|("(?:[^"\\\n]|\\.)*"|`[^`]*`)/g;
  let last = 0, m;
  while ((m = re.exec(src))) {
    out.push(esc(src.slice(last, m.index)).replace(KEYWORDS, '<span class="k">$1</span>'));
    out.push(m[1] ? `<span class="c">${esc(m[1])}</span>` : `<span class="s">${esc(m[2])}</span>`);
    last = re.lastIndex;
  }
  out.push(esc(src.slice(last)).replace(KEYWORDS, '<span class="k">$1</span>'));
  return out.join("");
}

function renderCode(v) {
  const ran = v.events.length ? v.events[0].code || [] : [];
  for (const group of ["engine", "state"]) {
    const snips = state.sources.filter((s) => s.group === group);
    // The functions of this column that the latest step running any of them ran, in order.
    let ranHere = [], ranStep = 0;
    for (const e of v.events) {
      const c = (e.code || []).filter((n) => snips.some((s) => s.name === n));
      if (c.length) { ranHere = c; ranStep = e.step; break; }
    }
    // A new step shows the first function it ran; a pick by hand stays until then.
    if (ranHere.length && state.lastStep !== v.step) state.shown[group] = ranHere[0];
    if (!state.shown[group] && snips.length) state.shown[group] = snips[0].name;
    $(`#${group}-tabs`).innerHTML = snips.map((s) => `<button data-show="${esc(s.name)}" data-group="${group}" class="${ranHere.includes(s.name) ? "ran" : ""} ${state.shown[group] === s.name ? "shown" : ""}">${esc(s.name)}</button>`).join("");
    const s = snips.find((x) => x.name === state.shown[group]);
    const when = ranHere.includes(s?.name) ? (ranStep === v.step ? " (ran in the last step)" : ` (last ran in step ${ranStep})`) : "";
    $(`#code-${group}`).innerHTML = s ? `<span class="file">${esc(s.file)} — ${esc(s.name)}${when}</span>${highlight(s.text)}` : "";
  }
  $("#code-note").textContent = !v.events.length ? "(no step yet)"
    : ran.length ? `(step ${v.step} ran: ${ran.join(", ")})` : `(step ${v.step} ran no protocol code)`;
  state.lastStep = v.step;
}

// ---- auto mode ----

function stopAuto() {
  if (state.auto) clearInterval(state.auto);
  state.auto = null;
  $("#auto").classList.remove("on");
  $("#auto").textContent = "Auto ▶";
}

function toggleAuto() {
  if (state.auto) return stopAuto();
  $("#auto").classList.add("on");
  $("#auto").textContent = "Auto ❚❚";
  let busy = false;
  state.auto = setInterval(async () => {
    if (busy) return;
    busy = true;
    const r = await post({ op: "step" });
    busy = false;
    if (r.error || (r.message || "").startsWith("nothing left")) stopAuto();
  }, +$("#auto-speed").value || 500);
}

// ---- wiring ----

document.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button");
  if (!b || b.disabled) return;
  const d = b.dataset;
  if (d.cmd) return act({ act: "submit", proposer: +d.proposer, cmd: d.cmd });
  if (d.act) {
    const c = { act: d.act };
    if (d.msg) c.msg = +d.msg;
    if (d.proposer) c.proposer = +d.proposer;
    if (d.acceptor) c.acceptor = d.acceptor;
    return act(c);
  }
  if (d.show) {
    state.shown[d.group] = d.show;
    return renderCode(state.view);
  }
  if (d.tab) {
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === b));
    $("#session-view").hidden = d.tab !== "session";
    $("#live-view").hidden = d.tab !== "live";
    $("#controls").hidden = d.tab !== "session";
  }
});

$("#step").onclick = () => post({ op: "step" });
$("#quiesce").onclick = () => post({ op: "quiesce" });
$("#undo").onclick = () => post({ op: "undo" });
$("#auto").onclick = toggleAuto;
$("#reset").onclick = () => { stopAuto(); post({ op: "reset", seed: +$("#seed").value || 1 }); };
$("#load").onclick = () => {
  stopAuto();
  const name = $("#scenario").value;
  post(name ? { op: "load", scenario: name, seed: +$("#seed").value || 1 } : { op: "reset", seed: +$("#seed").value || 1 });
};
$("#import-file").onchange = async (ev) => {
  const f = ev.target.files[0];
  if (!f) return;
  stopAuto();
  try {
    await post({ op: "import", import: JSON.parse(await f.text()) });
  } catch (e) {
    $("#message").textContent = "refused: import: " + e.message;
  }
  ev.target.value = "";
};

$("#live-attach").onclick = () => {
  if (state.live) state.live.close();
  const q = new URLSearchParams({ cluster: $("#live-cluster").value, keys: $("#live-keys").value });
  state.live = new EventSource(`/api/live?${q}`);
  $("#live-status").textContent = "attaching…";
  state.live.addEventListener("live", (e) => renderLive(JSON.parse(e.data)));
};

function renderLive(s) {
  $("#live-status").innerHTML = `${esc(s.time)} · ${esc(s.source || "")} ${s.error ? `<span class="bad">${esc(s.error)}</span>` : ""} ${s.keys ? `<br><small>${esc(s.keys)}</small>` : ""}`;
  $("#live-body").innerHTML = (s.acceptors || []).map((a) => `<div class="card"><h3>${esc(a.cluster)} / ${esc(a.acceptor)} <small>v${esc(a.version)} · ${esc(a.serviceId)} · since ${esc(a.started)}</small></h3>
    <table><thead><tr><th>endpoint</th><th>subject</th><th>requests</th><th>errors</th><th>avg</th><th>last error</th></tr></thead><tbody>
    ${a.endpoints.map((e) => `<tr><td>${esc(e.name)}</td><td class="mono">${esc(e.subject)}</td><td>${e.requests}</td><td>${e.errors}</td><td>${esc(e.average)}</td><td>${esc(e.lastError)}</td></tr>`).join("")}</tbody></table>
    ${(a.keys || []).length ? `<table><thead><tr><th>key</th><th>promised</th><th>accepted</th><th>value</th></tr></thead><tbody>${a.keys.map((k) => `<tr><td>${esc(k.key)}</td><td class="ballot">${esc(k.promised)}</td><td class="ballot">${esc(k.accepted)}</td><td>${esc(k.value)}</td></tr>`).join("")}</tbody></table>` : ""}</div>`).join("");
}

async function start() {
  const [sources, scenarios] = await Promise.all([api("/api/source"), api("/api/scenarios")]);
  state.sources = sources;
  $("#scenario").innerHTML += scenarios.map((s) => `<option value="${esc(s.name)}">${esc(s.title)}</option>`).join("");
  const seed = +new URLSearchParams(location.search).get("seed") || 1;
  $("#seed").value = seed;
  state.id = (await api("/api/sessions", { seed })).id;
  document.body.dataset.session = state.id;
  const es = new EventSource(`/api/sessions/${state.id}/events`);
  state.es = es;
  es.addEventListener("view", (e) => render(JSON.parse(e.data)));
  es.onopen = () => { $("#conn").textContent = "connected"; $("#conn").className = "ok"; document.body.dataset.ready = "1"; };
  es.onerror = () => { $("#conn").textContent = "disconnected (retrying)"; $("#conn").className = "bad"; };
}

start().catch((e) => { $("#message").textContent = "refused: " + e.message; });
