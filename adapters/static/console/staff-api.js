// Shared by the staff pages (console.js, console-desk.js, review.js): the admin API called with the
// signed-in member's token, and the small helpers every page needs. Loaded before them (deferred
// scripts run in order). Everything from the server reaches the page through textContent only.
"use strict";

window.FrontdeskStaff = (() => {
  class Unauthorized extends Error {}

  // An `api(method, path, body)` sending `Authorization: Bearer <token()>`; 401 throws `Unauthorized`.
  function client(token) {
    return async function api(method, path, body) {
      const headers = { Authorization: `Bearer ${token()}` };
      const init = { method, headers, cache: "no-store" };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      const response = await fetch(path, init);
      if (response.status === 401) throw new Unauthorized("wrong token");
      let data = null;
      try {
        data = await response.json();
      } catch {
        data = null;
      }
      return { ok: response.ok, status: response.status, data };
    };
  }

  // FastAPI answers {"detail": "text"} or, for a bad body, {"detail": [{"msg": ...}, ...]}.
  function problem(result) {
    const detail = result.data && result.data.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => d.msg).join("; ");
    return `the server answered ${result.status}`;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  return { Unauthorized, client, problem, el };
})();
