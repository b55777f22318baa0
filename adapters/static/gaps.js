// Frontdesk Gaps page: the topics of what customers asked and the bot did not answer (/admin/topics), a topic's
// examples, an FAQ entry drafted from it (/admin/topics/{id}/draft), edited and approved (/admin/kb/entries).
//
// Everything from the server reaches the page through textContent only, never innerHTML. The token is the
// console's (sessionStorage, same key), so a signed-in staff member comes straight here. Agents list and draft;
// approving is for admins, and the server's refusal is shown as it says it. `/console/gaps#<topic id>` (the
// console's "Top unanswered topics" links) opens that topic once it is listed.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const session = { token: null, loading: false, again: false, busy: false }; // token: the sign-in's
  const state = { topics: [], current: null, wanted: location.hash.slice(1) || null };

  const { Unauthorized, el } = window.FrontdeskStaff; // /console/staff-api.js
  const api = window.FrontdeskStaff.client(() => session.token);

  // FastAPI's {"detail": ...}: a string, a list of validation errors, or (a refused entry) {"reason", "errors"}.
  function detail(result) {
    const found = result.data && result.data.detail;
    if (typeof found === "string") return found;
    if (Array.isArray(found)) {
      return found.map((d) => {
        const field = Array.isArray(d.loc) ? d.loc.filter((part) => part !== "body").join(".") : "";
        return field ? `${field}: ${d.msg}` : d.msg;
      }).join("; ");
    }
    if (found && typeof found.reason === "string") {
      const errors = Array.isArray(found.errors) ? found.errors.map((e) => e.message || String(e)) : [];
      return errors.length ? `${found.reason} (${errors.join("; ")})` : found.reason;
    }
    return `the server answered ${result.status}`;
  }

  function say(text, bad) {
    $("message").textContent = text;
    $("message").classList.toggle("bad", Boolean(bad));
  }

  function days() {
    return Number($("window").value) || 7;
  }

  // 0.5 -> "+50 %"; null (nothing like it in the window before) -> "new".
  function trend(value) {
    if (value === null || value === undefined) return "new";
    const shown = Math.round(value * 100);
    return `${shown > 0 ? "+" : ""}${shown} %`;
  }

  function renderTopics(topics) {
    state.topics = topics;
    $("topic-rows").replaceChildren(...topics.map((topic) => {
      const tr = el("tr");
      tr.dataset.topic = topic.id;
      if (topic.id === state.current) tr.setAttribute("aria-current", "true");
      const open = el("button", "open-topic", topic.label || "(no label)");
      open.type = "button";
      open.addEventListener("click", () => openTopic(topic.id));
      const name = el("td", "label");
      name.append(open);
      const change = el("td", topic.trend === null || topic.trend === undefined ? "trend new" : "trend",
        trend(topic.trend));
      change.title = `${topic.previous} in the window before`;
      tr.append(name, el("td", "size", topic.size), el("td", "escalated", topic.escalated),
        el("td", "negative", topic.negative), change, el("td", "impact", topic.impact));
      return tr;
    }));
    $("topics-empty").hidden = topics.length > 0;
    if (state.current !== null && !topics.some((t) => t.id === state.current)) closeTopic();
    else if (state.current !== null) showExamples(topics.find((t) => t.id === state.current));
    if (state.current === null && state.wanted && topics.some((t) => t.id === state.wanted)) {
      openTopic(state.wanted);
      state.wanted = null;
    }
  }

  async function load() {
    if (!session.token) return;
    // A load already on its way may have been asked before an approval changed things: one more follows it.
    if (session.loading) {
      session.again = true;
      return;
    }
    session.loading = true;
    session.again = false;
    $("topics-loading").hidden = false;
    try {
      const result = await api("GET", `/admin/topics?days=${days()}`);
      if (result.ok) {
        renderTopics(result.data || []);
        $("load-error").textContent = "";
        $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
      } else {
        $("load-error").textContent = `Topics unavailable: ${detail(result)}`;
      }
    } catch (error) {
      if (error instanceof Unauthorized) return signOut("wrong token");
      $("load-error").textContent = "Cannot reach the server.";
    } finally {
      session.loading = false;
      $("topics-loading").hidden = true;
    }
    if (session.again) load();
  }

  function showExamples(topic) {
    $("topic-title").textContent = topic.label || "(no label)";
    $("examples").replaceChildren(...(topic.examples || []).map((text) => el("li", null, text)));
  }

  function openTopic(id) {
    const topic = state.topics.find((t) => t.id === id);
    if (!topic) return;
    state.current = id;
    for (const tr of $("topic-rows").children) {
      if (tr.dataset.topic === id) tr.setAttribute("aria-current", "true");
      else tr.removeAttribute("aria-current");
    }
    showExamples(topic);
    $("entry-form").reset();
    $("entry-form").hidden = true;
    $("approved").hidden = true;
    $("topic-none").hidden = true;
    $("topic").hidden = false;
    $("topic").dataset.topic = id;
    say("", false);
  }

  function closeTopic() {
    state.current = null;
    $("topic").hidden = true;
    delete $("topic").dataset.topic;
    $("topic-none").hidden = false;
    $("entry-form").hidden = true;
    for (const tr of $("topic-rows").children) tr.removeAttribute("aria-current");
  }

  function setBusy(busy) {
    session.busy = busy;
    $("draft").disabled = busy;
    $("approve").disabled = busy;
  }

  async function draft() {
    const id = state.current;
    if (id === null || session.busy) return;
    setBusy(true);
    say("Drafting an entry from the topic…", false);
    try {
      const result = await api("POST", `/admin/topics/${encodeURIComponent(id)}/draft`);
      if (!result.ok) {
        say(`No draft: ${detail(result)}`, true);
        if (result.status === 404) load(); // the topic is gone: list them again
        return;
      }
      if (state.current !== id) return; // another topic was opened meanwhile
      const entry = result.data;
      $("entry-question").value = entry.question || "";
      $("entry-answer").value = entry.answer || "";
      $("entry-alternates").value = (entry.alternates || []).join("\n");
      $("entry-id").value = "";
      const n = entry.staff_replies || 0;
      $("draft-note").textContent = n
        ? `The answer is the most typical of ${n} staff repl${n === 1 ? "y" : "ies"} in these conversations: check it.`
        : "Staff never answered these conversations: write the answer.";
      $("entry-form").hidden = false;
      say("Draft ready: edit it, then approve.", false);
      $("entry-answer").focus();
    } catch (error) {
      if (error instanceof Unauthorized) return signOut("wrong token");
      say("No draft: cannot reach the server.", true);
    } finally {
      setBusy(false);
    }
  }

  async function approve(event) {
    event.preventDefault();
    if (state.current === null || session.busy) return;
    const question = $("entry-question").value.trim();
    const answer = $("entry-answer").value.trim();
    if (!question) return say("Write the question first.", true);
    if (!answer) return say("Write the answer first.", true);
    const body = {
      question,
      answer,
      alternates: [...new Set($("entry-alternates").value.split("\n").map((a) => a.trim()).filter(Boolean))],
      topic: state.current,
    };
    const id = $("entry-id").value.trim();
    if (id) body.id = id;
    setBusy(true);
    say("Approving and reloading the knowledge base…", false);
    try {
      const result = await api("POST", "/admin/kb/entries", body);
      if (!result.ok) {
        say(`Not approved: ${detail(result)}`, true);
        return;
      }
      closeTopic();
      $("entry-id-shown").textContent = result.data.id;
      $("entry-version").textContent = result.data.version || "reloaded";
      $("approved").hidden = false;
      say("", false);
    } catch (error) {
      if (error instanceof Unauthorized) return signOut("wrong token");
      say("Not approved: cannot reach the server.", true);
      return;
    } finally {
      setBusy(false);
    }
    await load(); // the topic the entry covers drops out
  }

  const { signOut, start } = window.FrontdeskStaff.signIn(session, {
    page: "gaps",
    show: load,
    leave: closeTopic,
    async check() {
      const result = await api("GET", `/admin/topics?days=${days()}`);
      if (result.status === 403) throw new Error(detail(result));
    },
  });
  $("window").addEventListener("change", () => {
    closeTopic();
    $("approved").hidden = true;
    load();
  });
  $("refresh").addEventListener("click", load);
  $("draft").addEventListener("click", draft);
  $("entry-form").addEventListener("submit", approve);
  $("signout").addEventListener("click", () => signOut(""));

  start();
})();
