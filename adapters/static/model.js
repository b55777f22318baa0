// Frontdesk model page: the serving model, a shadow model's figures, and starting, stopping and promoting
// a shadow, over /admin/model (admins only).
//
// Everything from the server reaches the page through textContent only, never innerHTML. The token is the
// console's (sessionStorage, same key), so a signed-in admin comes straight here; an agent's token gets a
// plain refusal instead of a page of errors.
"use strict";

(() => {
  const REFRESH_MS = 3000;
  // bot/replay.py `Change`: how a customer's outcome would change with the shadow serving.
  const CHANGES = {
    answer_to_decline: "Answered now, would not be",
    decline_to_answer: "Not answered now, would be",
    answer_changed: "A different answer",
    escalation_added: "Would be handed to staff",
    escalation_removed: "Would no longer be handed to staff",
    suggestions_changed: "Other suggestions",
  };
  const $ = (id) => document.getElementById(id);
  const session = { token: null, timer: null, loading: false, again: false, busy: false }; // token: the sign-in's
  const shadow = { active: false, version: null };

  const { Unauthorized, el } = window.FrontdeskStaff; // /console/staff-api.js
  const api = window.FrontdeskStaff.client(() => session.token);

  // FastAPI's {"detail": ...}: a string, a list of validation errors, or (a refused deploy) {"reason", ...}.
  function detail(result) {
    const found = result.data && result.data.detail;
    if (typeof found === "string") return found;
    if (Array.isArray(found)) return found.map((d) => d.msg).join("; ");
    if (found && typeof found.reason === "string") return found.reason;
    return `the server answered ${result.status}`;
  }

  function say(text, bad) {
    $("message").textContent = text;
    $("message").classList.toggle("bad", Boolean(bad));
  }

  function number(value) {
    return typeof value === "number" ? String(value) : "–";
  }

  function percent(share) {
    return typeof share === "number" ? `${(share * 100).toFixed(1)} %` : "–";
  }

  function row(cells) {
    const tr = el("tr");
    for (const cell of cells) tr.append(el("td", null, cell === null || cell === undefined ? "–" : cell));
    return tr;
  }

  function renderServing(data) {
    $("serving-version").textContent = data.version || "–";
    $("serving-path").textContent = data.path || "";
    $("serving-previous").textContent = data.previous || "none";
    const workers = data.workers || [];
    $("worker-rows").replaceChildren(...workers.map((w) => {
      const tr = row([w.id, w.version, w.error || ""]);
      tr.dataset.worker = w.id;
      if (w.error) tr.classList.add("bad");
      return tr;
    }));
  }

  function renderShadow(data) {
    shadow.active = Boolean(data.active);
    shadow.version = data.active ? data.version : null;
    $("shadow-none").hidden = shadow.active;
    $("shadow").hidden = !shadow.active;
    updateButtons();
    if (!shadow.active) return;
    $("shadow-version").textContent = data.version;
    $("shadow-path-shown").textContent = data.path;
    $("shadow-since").textContent = new Date(data.since * 1000).toLocaleString();
    $("shadow-compared").textContent = number(data.compared);
    $("shadow-agreement").textContent = percent(data.agreement);
    $("shadow-changed").textContent = data.compared
      ? `${data.decisions_changed} (${percent(data.decisions_changed / data.compared)})`
      : number(data.decisions_changed);
    $("shadow-skipped").textContent = number(data.skipped);
    $("shadow-failed").textContent = number(data.failed);
    const changes = data.changes || {};
    $("change-rows").replaceChildren(...Object.keys(changes).map((kind) => {
      const tr = row([CHANGES[kind] || kind, number(changes[kind])]);
      tr.dataset.change = kind;
      return tr;
    }));
    const latency = data.latency_ms || {};
    $("latency-rows").replaceChildren(...Object.keys(latency).map((worker) => {
      const serving = latency[worker].serving || {};
      const candidate = latency[worker].candidate || {};
      const tr = row([worker, number(serving.p50), number(serving.p95), number(candidate.p50),
        number(candidate.p95)]);
      tr.dataset.worker = worker;
      return tr;
    }));
    $("shadow-worker-rows").replaceChildren(...(data.workers || []).map((w) => {
      const tr = row([w.id, w.running ? "yes" : "no", w.error || ""]);
      tr.dataset.worker = w.id;
      if (w.error) tr.classList.add("bad");
      return tr;
    }));
  }

  function updateButtons() {
    $("shadow-start").disabled = session.busy;
    $("shadow-stop").disabled = session.busy || !shadow.active;
    $("shadow-promote").disabled = session.busy || !shadow.active;
  }

  // An agent's token: the admin gate answers 403 naming the path. Say so once and stop polling.
  function refuse(result) {
    stopPolling();
    $("panels").hidden = true;
    $("refused").hidden = false;
    $("refused-text").textContent = `This page is for admins: ${detail(result)}.`;
  }

  async function load() {
    if (!session.token) return;
    // A load already on its way may have been asked before an action changed things: one more follows it.
    if (session.loading) {
      session.again = true;
      return;
    }
    session.loading = true;
    session.again = false;
    try {
      const [serving, shadowed] = await Promise.all([api("GET", "/admin/model"), api("GET", "/admin/model/shadow")]);
      if (serving.status === 403 || shadowed.status === 403) return refuse(serving.status === 403 ? serving : shadowed);
      const problems = [];
      if (serving.ok) renderServing(serving.data);
      else problems.push(`Serving model unavailable: ${detail(serving)}`);
      if (shadowed.ok) renderShadow(shadowed.data);
      else problems.push(`Shadow status unavailable: ${detail(shadowed)}`);
      $("load-error").textContent = problems.join(" ");
      $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (error instanceof Unauthorized) return signOut("wrong token");
      $("load-error").textContent = "Cannot reach the server.";
    } finally {
      session.loading = false;
    }
    if (session.again && session.timer !== null) load();
  }

  // One action at a time; a 401 signs out, anything else is said in the message line.
  async function act(method, path, body, done, failed) {
    session.busy = true;
    updateButtons();
    try {
      const result = await api(method, path, body);
      if (result.ok) say(done(result.data), false);
      else say(`${failed}: ${detail(result)}`, true);
    } catch (error) {
      if (error instanceof Unauthorized) return signOut("wrong token");
      say(`${failed}: cannot reach the server.`, true);
    } finally {
      session.busy = false;
      updateButtons();
    }
    await load();
  }

  function startShadow(event) {
    event.preventDefault();
    const path = $("shadow-path").value.trim();
    if (!path) return say("Type the model directory first.", true);
    say(`Loading and checking ${path}…`, false);
    act("POST", "/admin/model/shadow", { path }, (data) => `Shadow ${data.version} started.`, "Not started");
  }

  function stopShadow() {
    act("DELETE", "/admin/model/shadow", undefined,
      (data) => `Shadow stopped after ${data.compared || 0} compared message(s).`, "Not stopped");
  }

  function promote() {
    const version = shadow.version || "the shadow model";
    // Every worker switches and customers meet it: asked once more.
    if (!window.confirm(`Promote ${version} to serving on every worker?`)) return say("Not promoted.", false);
    say(`Checking and promoting ${version}…`, false);
    act("POST", "/admin/model/deploy", {}, (data) => `Now serving ${data.version}.`, "Not promoted");
  }

  function startPolling() {
    stopPolling();
    session.timer = setInterval(load, REFRESH_MS);
  }

  function stopPolling() {
    if (session.timer !== null) clearInterval(session.timer);
    session.timer = null;
  }

  const { signOut, start } = window.FrontdeskStaff.signIn(session, {
    page: "model",
    show() {
      $("refused").hidden = true;
      $("panels").hidden = false;
      load();
      startPolling();
    },
    leave: stopPolling,
    async check() {
      const result = await api("GET", "/admin/model");
      // 403: a valid staff token, not an admin's. Kept out of storage: the console's own sign-in keeps it.
      if (result.status === 403) throw new Error(`This page is for admins: ${detail(result)}.`);
    },
  });
  $("shadow-form").addEventListener("submit", startShadow);
  $("shadow-stop").addEventListener("click", stopShadow);
  $("shadow-promote").addEventListener("click", promote);
  $("signout").addEventListener("click", () => signOut(""));
  $("refused-signin").addEventListener("click", () => signOut(""));

  start();
})();
