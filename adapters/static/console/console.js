// Frontdesk staff console: the escalation queue, a conversation with claim / reply / resolve,
// the knowledge-base version with reload, and the day's numbers, all over the /admin JSON routes.
//
// Every piece of data (customer text above all) goes into the page through textContent, never
// innerHTML, so a message can never become markup. The token lives in sessionStorage: it is
// gone when the tab closes and never sent anywhere but this server's /admin routes.
"use strict";

(() => {
  const POLL_MS = 2000;
  const STORE = { token: window.FrontdeskStaff.TOKEN_KEY, agent: "frontdesk.console.agent" };
  const REASONS = {
    asked_for_human: "Asked for a person",
    negative_message: "Upset customer",
    negative_trend: "Mood getting worse",
    repeated_fallbacks: "Bot did not understand",
  };
  const ROLES = { customer: "Customer", bot: "Bot", agent: "Agent", system: "System", unanswered: "Not understood" };

  const $ = (id) => document.getElementById(id);
  const session = { token: sessionStorage.getItem(STORE.token), agent: sessionStorage.getItem(STORE.agent) };
  let selected = null; // the escalation id shown in the middle panel
  let pollTimer = null;
  let polling = false; // one poll at a time; a request for another meanwhile runs right after it
  let pollAgain = false;
  let queueKey = "";
  let transcriptKey = "";

  const { Unauthorized, problem, el } = window.FrontdeskStaff; // staff-api.js
  const api = window.FrontdeskStaff.client(() => session.token);

  // ------------------------------------------------------------------ small DOM helpers
  function setText(id, text) {
    $(id).textContent = text === undefined || text === null ? "–" : String(text);
  }

  function say(id, text, bad = false) {
    const node = $(id);
    node.textContent = text || "";
    node.classList.toggle("bad", bad);
  }

  function clock(seconds) {
    return seconds ? new Date(seconds * 1000).toLocaleString() : "–";
  }

  function ago(seconds) {
    const minutes = Math.max(0, Math.round((Date.now() / 1000 - seconds) / 60));
    if (minutes < 1) return "just now";
    if (minutes < 60) return `${minutes} min ago`;
    return `${Math.round(minutes / 60)} h ago`;
  }

  function percent(rate) {
    return rate === null || rate === undefined ? "–" : `${Math.round(rate * 1000) / 10}%`;
  }

  function statusBadge(node, status) {
    node.textContent = status;
    node.className = `badge status-${["open", "claimed", "resolved", "expired"].includes(status) ? status : "other"}`;
  }

  // ------------------------------------------------------------------ sign-in
  async function signIn(event) {
    event.preventDefault();
    const token = $("signin-token").value.trim();
    const agent = $("signin-agent").value.trim();
    if (!token || !agent) {
      say("signin-error", "Enter the admin token and your name.", true);
      return;
    }
    $("signin-submit").disabled = true;
    say("signin-error", "");
    session.token = token;
    try {
      await api("GET", "/admin/faq"); // any answer but 401 means the token passed the admin gate
    } catch (error) {
      session.token = null;
      say("signin-error", error instanceof Unauthorized ? "wrong token" : "Cannot reach the server.", true);
      return;
    } finally {
      $("signin-submit").disabled = false;
    }
    session.agent = agent;
    sessionStorage.setItem(STORE.token, token);
    sessionStorage.setItem(STORE.agent, agent);
    $("signin-token").value = "";
    showConsole();
  }

  function signOut(reason) {
    clearTimeout(pollTimer);
    pollTimer = null;
    sessionStorage.removeItem(STORE.token);
    sessionStorage.removeItem(STORE.agent);
    session.token = session.agent = null;
    selected = null;
    queueKey = transcriptKey = "";
    $("console").hidden = true;
    $("signin").hidden = false;
    document.dispatchEvent(new CustomEvent("frontdesk:signed-out"));
    say("signin-error", reason || "", Boolean(reason));
    $("signin-token").focus();
  }

  // The "Sign out" button: the server revokes the staff token first (POST /admin/staff/logout), so a copy
  // left anywhere (another tab, the review page) stops working too. The page signs out whatever it answers.
  async function signOutAndRevoke() {
    if (session.token) {
      try {
        await api("POST", "/admin/staff/logout");
      } catch {
        // unreachable or already refused: the token is dropped here all the same
      }
    }
    signOut();
  }

  function showConsole() {
    $("signin").hidden = true;
    $("console").hidden = false;
    $("agent-name").textContent = session.agent;
    document.dispatchEvent(new CustomEvent("frontdesk:signed-in")); // console-desk.js: alerts, saved replies, charts
    poll();
  }

  // ------------------------------------------------------------------ polling
  async function poll() {
    if (polling) {
      pollAgain = true;
      return;
    }
    polling = true;
    clearTimeout(pollTimer);
    try {
      // Each loader returns a problem to show (a 503 while the server starts) or nothing.
      const notes = (await Promise.all([loadQueue(), loadDetail(), loadFaq(), loadStats()])).filter(Boolean);
      say("connection", notes[0] || "", notes.length > 0);
    } catch (error) {
      if (error instanceof Unauthorized) {
        polling = false;
        signOut("wrong token"); // the server's token changed under us
        return;
      }
      say("connection", "Connection lost, retrying…", true);
    }
    polling = false;
    if (!session.token) return;
    if (pollAgain) {
      pollAgain = false;
      poll();
    } else {
      pollTimer = setTimeout(poll, POLL_MS);
    }
  }

  // ------------------------------------------------------------------ queue
  async function loadQueue() {
    // The server reads only the statuses asked for, one page of each: waiting and claimed ones are never pushed
    // out of the list by however many resolved or expired ones there are.
    const all = $("queue-filter").value === "all";
    const result = await api("GET", all ? "/admin/escalations" : "/admin/escalations?status=open&status=claimed");
    if (!result.ok) return problem(result);
    document.dispatchEvent(new CustomEvent("frontdesk:queue", { detail: result.data })); // the new-escalation alert
    const items = result.data.filter((r) => all || (r.status === "open" || r.status === "claimed"));
    const key = JSON.stringify([items, selected, Math.floor(Date.now() / 60000)]);
    if (key === queueKey) return; // unchanged: leave the buttons alone so a click is never lost
    queueKey = key;
    const list = $("queue");
    list.replaceChildren(...items.map(queueItem));
    $("queue-empty").hidden = items.length > 0;
  }

  function queueItem(record) {
    const button = el("button", "item");
    button.type = "button";
    button.dataset.id = record.id;
    button.setAttribute("aria-current", String(record.id === selected));
    const status = el("span");
    statusBadge(status, record.status);
    button.append(
      el("span", "reason", REASONS[record.reason] || record.reason),
      status,
      el("span", "who", `${record.channel} · ${customerName(record)}${record.out_of_hours ? " · out of hours" : ""}`),
      el("span", "age", record.agent ? `${record.agent} · ${ago(record.created_at)}` : ago(record.created_at)),
    );
    button.addEventListener("click", () => select(record.id));
    const li = el("li");
    li.append(button);
    return li;
  }

  // The name the customer's channel gave (Slack, Telegram, /chat's "name"), with their id; else the id.
  function customerName(record) {
    return record.display_name ? `${record.display_name} (${record.user_id})` : record.user_id;
  }

  function select(id) {
    if (id !== selected) {
      selected = id;
      transcriptKey = "";
      $("reply-text").value = "";
      say("detail-message", "");
    }
    queueKey = "";
    poll();
  }

  // ------------------------------------------------------------------ one conversation
  async function loadDetail() {
    if (!selected) {
      $("detail").hidden = true;
      $("detail-none").hidden = false;
      return;
    }
    const id = selected;
    const result = await api("GET", `/admin/escalations/${encodeURIComponent(id)}`);
    if (id !== selected) return; // another item was picked meanwhile
    if (result.status === 404) {
      selected = null;
      return;
    }
    if (!result.ok) return problem(result);
    renderDetail(result.data);
  }

  function renderDetail(record) {
    $("detail-none").hidden = true;
    $("detail").hidden = false;
    $("detail-title").textContent = `Conversation ${record.conversation_id}`;
    statusBadge($("detail-status"), record.status);
    setText("detail-reason", REASONS[record.reason] || record.reason);
    setText("detail-customer", `${customerName(record)} on ${record.channel}`
      + (record.out_of_hours ? " (queued out of hours)" : "") + (record.rating ? ` · rated ${record.rating}/5` : ""));
    setText("detail-agent", record.agent);
    setText("detail-created", clock(record.created_at));
    $("claim").disabled = record.status !== "open";
    const finished = record.status === "resolved" || record.status === "expired"; // expired: the bot has it again
    $("resolve").disabled = finished;
    $("reply-text").disabled = $("reply-send").disabled = finished;

    const events = record.transcript || [];
    const key = JSON.stringify([events.length, events.length ? events[events.length - 1].at : 0]);
    if (key === transcriptKey) return;
    transcriptKey = key;
    const list = $("transcript");
    list.replaceChildren(...events.map(transcriptItem));
    list.scrollTop = list.scrollHeight;
  }

  function transcriptItem(event) {
    const role = Object.hasOwn(ROLES, event.role) ? event.role : "other";
    const li = el("li", `msg role-${role}`);
    li.dataset.role = role;
    const who = event.role === "agent" && (event.by || event.agent)
      ? `${ROLES.agent} ${event.by || event.agent}` : ROLES[role] || event.role;
    const time = event.at ? new Date(event.at * 1000).toLocaleTimeString() : "";
    li.append(el("span", "from", `${who} · ${time}`));
    // An "unanswered" event repeats the customer's text just above it: say what it means instead.
    li.append(el("span", "text", role === "unanswered" ? "the bot did not understand the message above" : event.text));
    const cite = citation(event.source);
    if (cite) li.append(cite);
    return li;
  }

  // A link's target only when it is an absolute http(s) URL: a javascript: or data: one stays text.
  function safeUrl(url) {
    if (typeof url !== "string" || !url) return null;
    try {
      const parsed = new URL(url);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch {
      return null;
    }
  }

  // The help-center article a bot answer quoted, beside it: "Source: title › section", linked when it has a URL.
  function citation(source) {
    if (!source || source.kind !== "article") return null;
    const url = safeUrl(source.url);
    const label = [source.title, source.section].filter(Boolean).map(String).join(" › ") || url || String(source.id || "");
    const line = el("span", "source", "Source: ");
    let target;
    if (url) {
      target = el("a", "", label);
      target.href = url;
      target.target = "_blank";
      target.rel = "noopener noreferrer";
    } else {
      target = el("span", "", label);
    }
    line.append(target);
    return line;
  }

  async function staffAction(action, body) {
    const id = selected;
    if (!id) return;
    say("detail-message", "");
    for (const button of ["claim", "resolve", "reply-send"]) $(button).disabled = true;
    try {
      const result = await api("POST", `/admin/escalations/${encodeURIComponent(id)}/${action}`,
        { agent: session.agent, ...body });
      if (!result.ok) {
        say("detail-message", problem(result), true);
      } else if (action === "reply") {
        $("reply-text").value = "";
        say("detail-message", "Sent.");
      } else {
        say("detail-message", action === "claim" ? "Claimed: the customer now talks to you." : "Resolved: the bot takes over again.");
      }
    } catch (error) {
      if (error instanceof Unauthorized) return signOut("wrong token");
      say("detail-message", "Cannot reach the server.", true);
    }
    queueKey = transcriptKey = "";
    poll();
  }

  function sendReply(event) {
    event.preventDefault();
    const text = $("reply-text").value.trim();
    if (!text) {
      say("detail-message", "Write a reply first.", true);
      return;
    }
    staffAction("reply", { text });
  }

  // ------------------------------------------------------------------ knowledge base
  async function loadFaq() {
    const result = await api("GET", "/admin/faq");
    // An agent's token: the knowledge base is the admins' (403 by role), not a connection problem.
    if (result.status === 403) {
      setText("faq-version", "admins only");
      return undefined;
    }
    if (!result.ok) {
      setText("faq-version", result.status === 503 ? "loading…" : "unavailable");
      return problem(result);
    }
    const version = result.data.version;
    setText("faq-version", version ? version.version : "not loaded");
    setText("faq-entries", version ? version.entries : null);
    setText("faq-built", version ? clock(version.built_at) : null);
  }

  async function reloadFaq() {
    const button = $("faq-reload");
    button.disabled = true;
    say("faq-message", "Reloading…");
    $("faq-errors").replaceChildren();
    try {
      const result = await api("POST", "/admin/faq/reload");
      if (result.ok) {
        const v = result.data.version;
        say("faq-message", result.data.changed ? `Reloaded: now version ${v.version} (${v.entries} entries).`
          : `Reloaded: nothing changed, still version ${v.version}.`);
      } else if (result.status === 422 && result.data && Array.isArray(result.data.errors)) {
        const serving = result.data.version ? result.data.version.version : "nothing";
        say("faq-message", `Reload rejected (${result.data.errors.length} problem(s)); still serving ${serving}.`, true);
        $("faq-errors").replaceChildren(...result.data.errors.map(
          (e) => el("li", "", `${e.file}:${e.line}: ${e.message}`)));
      } else {
        say("faq-message", problem(result), true);
      }
    } catch (error) {
      if (error instanceof Unauthorized) return signOut("wrong token");
      say("faq-message", "Cannot reach the server.", true);
    } finally {
      button.disabled = false;
    }
    await loadFaq().catch(() => {});
  }

  // ------------------------------------------------------------------ numbers
  async function loadStats() {
    const result = await api("GET", "/admin/stats");
    if (!result.ok) return problem(result); // 503 while the bot loads: keep what is shown
    const s = result.data;
    setText("stats-messages", s.messages_today);
    setText("stats-conversations", s.conversations_today);
    setText("stats-containment", percent(s.containment_rate));
    setText("stats-escalation", percent(s.escalation_rate));
    fillTop("stats-intents", s.top_intents, "No messages yet.");
    fillTop("stats-unanswered", s.top_unanswered, "None: every question got an answer.");
  }

  function fillTop(id, pairs, empty) {
    const items = pairs.length ? pairs.map(([text, count]) => {
      const li = el("li", "", text);
      li.append(el("span", "count", `× ${count}`));
      return li;
    }) : [el("li", "muted", empty)];
    $(id).replaceChildren(...items);
  }

  // ------------------------------------------------------------------ start
  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOutAndRevoke);
    $("queue-filter").addEventListener("change", () => { queueKey = ""; poll(); });
    $("claim").addEventListener("click", () => staffAction("claim", {}));
    $("resolve").addEventListener("click", () => staffAction("resolve", {}));
    $("reply-form").addEventListener("submit", sendReply);
    $("faq-reload").addEventListener("click", reloadFaq);
    if (session.token && session.agent) {
      showConsole();
    } else {
      $("console").hidden = true;
      $("signin-token").focus();
    }
  });
})();
