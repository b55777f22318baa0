// Frontdesk staff console, the parts staff keep it open all day for: who is signed in, a live alert
// when an escalation arrives (title badge and a short sound, toggleable and remembered), the team's
// saved replies, charts of the last 30 days drawn as inline SVG (no library, nothing from outside), and the
// top unanswered topics of the week, linking to the Gaps page (/console/gaps).
//
// console.js owns sign-in and polling; it tells this file what it saw through DOM events
// ("frontdesk:signed-in", "frontdesk:queue" with the escalation list, "frontdesk:signed-out").
// As there, everything from the server goes into the page through textContent or SVG attributes.
"use strict";

(() => {
  const CHART_MS = 60000;
  const SOUND_KEY = "frontdesk.console.sound";
  const TITLE = document.title;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let known = null; // ids of escalations seen so far; null until the first list after signing in
  let chartTimer = null;
  let topicsTimer = null;
  const TOP_TOPICS = 5;
  let audio = null;

  function token() {
    return sessionStorage.getItem(window.FrontdeskStaff.TOKEN_KEY);
  }

  // 401 throws; every call here treats a refusal like an unreachable server (`.catch(() => null)`).
  const api = window.FrontdeskStaff.client(token);
  const { el } = window.FrontdeskStaff; // staff-api.js

  // ------------------------------------------------------------------ who is signed in
  async function loadMe() {
    const result = await api("GET", "/admin/me").catch(() => null);
    // Servers without staff accounts have no /admin/me: the typed name is all there is to show.
    const me = $("me");
    if (!result || !result.ok || !result.data || !result.data.name) {
      me.hidden = true;
      return;
    }
    me.textContent = `token: ${result.data.name} (${result.data.role})`;
    me.hidden = false;
  }

  // ------------------------------------------------------------------ the alert
  function soundOn() {
    return localStorage.getItem(SOUND_KEY) !== "off";
  }

  function beep() {
    // A short two-tone chime. Browsers may refuse audio before the page was clicked: then it stays silent.
    try {
      audio = audio || new AudioContext();
      const now = audio.currentTime;
      for (const [offset, frequency] of [[0, 880], [0.16, 1320]]) {
        const tone = audio.createOscillator();
        const gain = audio.createGain();
        tone.frequency.value = frequency;
        gain.gain.setValueAtTime(0.15, now + offset);
        gain.gain.exponentialRampToValueAtTime(0.001, now + offset + 0.15);
        tone.connect(gain).connect(audio.destination);
        tone.start(now + offset);
        tone.stop(now + offset + 0.15);
      }
      const toggle = $("alert-sound");
      toggle.dataset.played = String(Number(toggle.dataset.played || 0) + 1);
    } catch {
      // no audio device, or not allowed yet
    }
  }

  function onQueue(event) {
    const records = event.detail || [];
    const waiting = records.filter((r) => r.status === "open").length;
    document.title = waiting ? `(${waiting}) ${TITLE}` : TITLE;
    const ids = new Set(records.map((r) => r.id));
    if (known === null) { // the first list after signing in: what is there already is not news
      known = ids;
      return;
    }
    const fresh = records.filter((r) => !known.has(r.id) && r.status === "open");
    known = ids;
    if (!fresh.length) return;
    const newest = fresh[0];
    const who = newest.display_name || newest.user_id;
    const when = newest.out_of_hours ? " (queued out of hours)" : "";
    $("alert-text").textContent = fresh.length === 1 ? `New escalation from ${who} on ${newest.channel}${when}`
      : `${fresh.length} new escalations`;
    $("alert").hidden = false;
    if (soundOn()) beep();
  }

  // ------------------------------------------------------------------ saved replies
  async function loadSaved() {
    const result = await api("GET", "/admin/saved-replies").catch(() => null);
    const list = $("saved-list");
    if (!result || !result.ok) {
      list.replaceChildren(el("li", "muted", "Saved replies are unavailable."));
      return;
    }
    const items = result.data.map((reply) => {
      const li = el("li", "saved-item");
      const insert = el("button", "saved-insert", reply.title);
      insert.type = "button";
      insert.title = reply.text;
      insert.addEventListener("click", () => insertReply(reply.text));
      const remove = el("button", "secondary saved-delete", "×");
      remove.type = "button";
      remove.setAttribute("aria-label", `Delete saved reply ${reply.title}`);
      remove.addEventListener("click", () => deleteSaved(reply.id));
      li.append(insert, remove);
      return li;
    });
    list.replaceChildren(...(items.length ? items : [el("li", "muted", "None yet: save one below.")]));
  }

  function insertReply(text) {
    const box = $("reply-text");
    if (box.disabled) return;
    box.value = box.value.trim() ? `${box.value.trimEnd()}\n${text}` : text;
    box.focus();
  }

  async function saveReply(event) {
    event.preventDefault();
    const title = $("saved-title").value.trim();
    const text = $("saved-text").value.trim();
    if (!title || !text) {
      $("saved-message").textContent = "Give the reply a title and a text.";
      return;
    }
    const result = await api("POST", "/admin/saved-replies", { title, text }).catch(() => null);
    if (result && result.ok) {
      $("saved-title").value = $("saved-text").value = "";
      $("saved-message").textContent = "Saved for the whole team.";
    } else {
      const detail = result && result.data && result.data.detail;
      $("saved-message").textContent = typeof detail === "string" ? detail : "Not saved.";
    }
    loadSaved();
  }

  async function deleteSaved(id) {
    await api("DELETE", `/admin/saved-replies/${encodeURIComponent(id)}`).catch(() => null);
    loadSaved();
  }

  // ------------------------------------------------------------------ charts
  const CHARTS = [
    { id: "chart-messages", value: (d) => d.messages, format: (v) => String(v) },
    { id: "chart-containment", value: (d) => d.containment_rate, format: percent, max: 1 },
    // bot.resolution's rule: conversations the bot finished without staff and the customer did not come back.
    { id: "chart-resolution", value: (d) => d.resolution_rate, format: percent, max: 1 },
    { id: "chart-reopen", value: (d) => d.reopen_rate, format: percent, max: 1 },
    { id: "chart-escalation", value: (d) => d.escalation_rate, format: percent, max: 1 },
    { id: "chart-csat", value: (d) => d.csat_average, format: (v) => v.toFixed(1), min: 1, max: 5 },
  ];

  function percent(v) {
    return `${Math.round(v * 1000) / 10}%`;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    return node;
  }

  // One line over the days; a point (with its value as a tooltip) on each day that has one. Days without
  // data (no conversations, no ratings) leave a gap rather than pretending to be zero.
  function drawChart(chart, days) {
    const width = 280;
    const height = 70;
    const pad = 6;
    const values = days.map(chart.value);
    const present = values.filter((v) => v !== null && v !== undefined);
    const low = chart.min ?? 0;
    const high = Math.max(chart.max ?? 0, ...present, low + 1);
    const x = (i) => pad + (days.length > 1 ? (i * (width - 2 * pad)) / (days.length - 1) : (width - 2 * pad) / 2);
    const y = (v) => height - pad - ((v - low) * (height - 2 * pad)) / (high - low);
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
    root.append(svg("line", { x1: pad, x2: width - pad, y1: height - pad, y2: height - pad, class: "axis" }));
    let segment = [];
    const flush = () => {
      if (segment.length > 1) root.append(svg("polyline", { points: segment.join(" "), class: "line" }));
      segment = [];
    };
    values.forEach((v, i) => {
      if (v === null || v === undefined) return flush();
      segment.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      const point = svg("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5, class: "point",
        "data-day": days[i].day, "data-value": v });
      const tip = svg("title", {});
      tip.textContent = `${days[i].day}: ${chart.format(v)}`;
      point.append(tip);
      root.append(point);
    });
    flush();
    const latest = present.length ? chart.format(present[present.length - 1]) : "no data";
    root.setAttribute("aria-label", `${days.length} days; latest ${latest}`);
    $(chart.id).replaceChildren(root);
    $(`${chart.id}-latest`).textContent = latest;
  }

  async function loadCharts() {
    clearTimeout(chartTimer);
    if (!token()) return;
    const result = await api("GET", "/admin/stats/daily?days=30").catch(() => null);
    if (result && result.ok) {
      for (const chart of CHARTS) drawChart(chart, result.data.days);
      const today = result.data.days[result.data.days.length - 1];
      $("stats-csat").textContent = today && today.csat_count
        ? `${today.csat_average.toFixed(1)} / 5 (${today.csat_count})` : "–";
    }
    chartTimer = setTimeout(loadCharts, result && result.ok ? CHART_MS : 3000);
  }

  // ------------------------------------------------------------------ top unanswered topics
  // The week's topics of unanswered messages, most impact first (/admin/topics, built on the server and kept
  // there for half a minute): label and size, each a link to the Gaps page opened on that topic.
  async function loadTopics() {
    clearTimeout(topicsTimer);
    if (!token()) return;
    const result = await api("GET", "/admin/topics?days=7").catch(() => null);
    const list = $("top-topics");
    if (result && result.ok && Array.isArray(result.data)) {
      const items = result.data.slice(0, TOP_TOPICS).map((topic) => {
        const li = el("li");
        li.dataset.topic = topic.id;
        const link = el("a", "topic-link", topic.label || "(no label)");
        link.href = `/console/gaps#${encodeURIComponent(topic.id)}`;
        li.append(link, el("span", "count", topic.size));
        return li;
      });
      list.replaceChildren(...(items.length ? items : [el("li", "muted", "None this week.")]));
    } else if (!list.children.length) {
      list.replaceChildren(el("li", "muted", "Topics are unavailable."));
    }
    topicsTimer = setTimeout(loadTopics, result && result.ok ? CHART_MS : 3000);
  }

  // ------------------------------------------------------------------ start
  document.addEventListener("frontdesk:signed-in", () => {
    known = null;
    loadMe();
    loadSaved();
    loadCharts();
    loadTopics();
  });
  document.addEventListener("frontdesk:signed-out", () => {
    clearTimeout(chartTimer);
    clearTimeout(topicsTimer);
    known = null;
    document.title = TITLE;
    $("alert").hidden = true;
  });
  document.addEventListener("frontdesk:queue", onQueue);
  document.addEventListener("DOMContentLoaded", () => {
    const toggle = $("alert-sound");
    toggle.checked = soundOn();
    toggle.addEventListener("change", () => {
      localStorage.setItem(SOUND_KEY, toggle.checked ? "on" : "off");
      if (toggle.checked) beep(); // a click is the gesture browsers want before playing sound
    });
    $("alert-dismiss").addEventListener("click", () => { $("alert").hidden = true; });
    $("saved-form").addEventListener("submit", saveReply);
  });
})();
