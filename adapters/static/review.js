// Frontdesk review inbox: what the bot was unsure of, labelled by staff over /admin/review.
//
// Customer text reaches the page through textContent only, never innerHTML. The token is the
// console's (sessionStorage, same key), so a signed-in staff member comes straight here.
"use strict";

(() => {
  const REASONS = {
    fallback: "Not understood",
    low_confidence: "Answered, unsure",
    suggested: "Suggestions only",
    escalated: "Handed to staff",
    answered_by_staff: "Staff answered",
  };
  const $ = (id) => document.getElementById(id);
  const session = { token: null }; // set by the sign-in below

  const { Unauthorized, problem, el } = window.FrontdeskStaff; // /console/staff-api.js
  const api = window.FrontdeskStaff.client(() => session.token);

  function say(text, bad) {
    $("message").textContent = text;
    $("message").classList.toggle("bad", Boolean(bad));
  }

  function when(seconds) {
    return new Date(seconds * 1000).toLocaleString();
  }

  function labelText(item) {
    if (item.status === "dismissed") return "dismissed";
    if (item.label_intent) return `intent: ${item.label_intent}`;
    if (item.label_faq) return `FAQ: ${item.label_faq}`;
    return "";
  }

  async function label(item, body, row) {
    const result = await api("POST", `/admin/review/${encodeURIComponent(item.id)}`, body);
    if (!result.ok) {
      say(`Not labelled: ${problem(result)}`, true);
      return;
    }
    const n = result.data.changed.length;
    say(`Labelled ${n} message${n === 1 ? "" : "s"}.`, false);
    row.classList.add("done");
    await load();
  }

  function labelForm(item, row) {
    const form = el("form");
    form.dataset.id = item.id;
    const intent = el("input");
    intent.name = "intent";
    intent.placeholder = "intent";
    intent.setAttribute("list", "intent-names");
    intent.setAttribute("aria-label", `Intent for message ${item.id}`);
    intent.maxLength = 100;
    const labelButton = el("button", "label-intent", "Label");
    labelButton.type = "submit";
    const faq = el("input");
    faq.name = "faq_id";
    faq.placeholder = "FAQ entry id";
    faq.setAttribute("aria-label", `FAQ entry for message ${item.id}`);
    const faqButton = el("button", "secondary label-faq", "Add to FAQ");
    faqButton.type = "button";
    const dismiss = el("button", "secondary dismiss", "Dismiss");
    dismiss.type = "button";
    const groupLabel = el("label", "sub");
    const group = el("input");
    group.type = "checkbox";
    group.name = "group";
    groupLabel.append(group, " whole group");
    form.append(intent, labelButton, faq, faqButton, dismiss, groupLabel);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const name = intent.value.trim();
      if (!name) return say("Type an intent name first.", true);
      label(item, { intent: name, group: group.checked }, row);
    });
    faqButton.addEventListener("click", () => {
      const id = faq.value.trim();
      if (!id) return say("Type the FAQ entry id first.", true);
      label(item, { faq_id: id, group: group.checked }, row);
    });
    dismiss.addEventListener("click", () => label(item, { dismiss: true, group: group.checked }, row));
    return form;
  }

  function render(items) {
    const rows = $("item-rows");
    rows.replaceChildren();
    const names = new Set();
    for (const item of items) {
      if (item.intent && item.intent !== "oos") names.add(item.intent);
      if (item.label_intent) names.add(item.label_intent);
      const row = el("tr");
      row.dataset.id = item.id;
      row.dataset.status = item.status;
      const text = el("td", "text", item.text);
      text.append(el("span", "sub", `${item.channel} · group ${item.group.slice(0, 6)}`));
      const thought = el("td", null, item.intent || "-");
      const confidence = typeof item.confidence === "number" ? `${Math.round(item.confidence * 100)} %` : "";
      thought.append(el("span", "sub", confidence));
      if (item.faq_id) thought.append(el("span", "sub", `FAQ ${item.faq_id} (${item.faq_score})`));
      const reason = el("td", null, REASONS[item.reason] || item.reason);
      const at = el("td", null, when(item.at));
      const action = el("td", "action");
      const done = labelText(item);
      if (done) action.append(el("span", "labelled", done));
      else action.append(labelForm(item, row));
      if (done) row.classList.add("done");
      row.append(text, thought, reason, at, action);
      rows.append(row);
    }
    $("empty").hidden = items.length > 0;
    $("intent-names").replaceChildren(...[...names].sort().map((n) => {
      const option = el("option");
      option.value = n;
      return option;
    }));
  }

  async function load() {
    const status = $("status-filter").value;
    try {
      const result = await api("GET", `/admin/review${status ? `?status=${status}` : ""}`);
      if (!result.ok) return say(`Cannot load the inbox: ${problem(result)}`, true);
      render(result.data);
    } catch (error) {
      if (error instanceof Unauthorized) return signOut("wrong token");
      say("Cannot reach the server.", true);
    }
  }

  async function exportCsv(event) {
    event.preventDefault();
    const response = await fetch("/admin/review/export", { headers: { Authorization: `Bearer ${session.token}` } });
    if (!response.ok) return say(`Export failed: the server answered ${response.status}`, true);
    const url = URL.createObjectURL(await response.blob());
    const link = el("a");
    link.href = url;
    link.download = "review-labels.csv";
    link.click();
    URL.revokeObjectURL(url);
  }

  const { signOut, start } = window.FrontdeskStaff.signIn(session, {
    page: "review",
    show: load,
    async check() {
      const result = await api("GET", "/admin/review?limit=1");
      if (!result.ok) throw new Error(problem(result));
    },
  });
  $("status-filter").addEventListener("change", load);
  $("refresh").addEventListener("click", load);
  $("export").addEventListener("click", exportCsv);

  start();
})();
