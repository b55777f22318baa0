// Shared by the staff pages (console.js, console-desk.js, review.js, gaps.js, model.js): the admin API called
// with the signed-in member's token, the sign-in of a page, and the small helpers every page needs. Loaded before them (deferred
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

  // One sign-in for every staff page: the console's token, in sessionStorage (this tab only) under one key.
  const TOKEN_KEY = "frontdesk.console.token";

  // A staff page's sign-in form (#signin, #signin-form, #signin-token, #signin-error) in front of its element
  // `page`. `session.token` holds the token (read from storage here). A token typed in is kept once `check()`
  // accepts it; `check` throws an Error saying why not (a 401 is "wrong token"). `show()` runs whenever the
  // page is shown, `leave()` (optional) when it is signed out of. Returns `signOut(reason)` and `start()`,
  // which shows the page for a stored token and the form otherwise.
  function signIn(session, { page, check, show, leave }) {
    const $ = (id) => document.getElementById(id);
    session.token = sessionStorage.getItem(TOKEN_KEY);

    function enter() {
      $("signin").hidden = true;
      $(page).hidden = false;
      show();
    }

    function signOut(reason) {
      if (leave) leave();
      sessionStorage.removeItem(TOKEN_KEY);
      session.token = null;
      $(page).hidden = true;
      $("signin").hidden = false;
      $("signin-error").textContent = reason || "";
    }

    $("signin-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      session.token = $("signin-token").value.trim();
      try {
        await check();
      } catch (error) {
        session.token = null;
        $("signin-error").textContent = error instanceof Unauthorized ? "wrong token" : String(error.message);
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, session.token);
      $("signin-token").value = "";
      enter();
    });

    function start() {
      if (session.token) enter();
      else $("signin").hidden = false;
    }

    return { signOut, start };
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  return { Unauthorized, client, problem, el, signIn, TOKEN_KEY };
})();
