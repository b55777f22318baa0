// Frontdesk web chat: talks to /web/ws, keeps its session id in localStorage so a reload continues the
// conversation, redraws the transcript the server sends on every (re)connect, and resends messages that
// were not answered before the connection dropped (the server de-duplicates them by id).
// The session is the customer's credential: it goes in the socket's first frame (a "hello"), never in a URL,
// which proxies log. A page without one says hello without it and stores the one the server sends back.
// All text from the server or the user goes into the page with textContent, never as HTML.
(function () {
  "use strict";

  var SESSION_KEY = "frontdesk.web.session";
  var SESSION_RE = /^[A-Za-z0-9_-]{16,64}$/;
  var MAX_BACKOFF_MS = 30000;

  var log = document.getElementById("log");
  var statusLine = document.getElementById("status");
  var form = document.getElementById("composer");
  var input = document.getElementById("message");

  var socket = null;
  var attempt = 0;
  var pending = new Map(); // client id -> {text, el, socket}: sent (or queued) but not yet answered

  function randomId(bytes) {
    // crypto.getRandomValues works on plain http too (randomUUID needs a secure context).
    var data = new Uint8Array(bytes);
    crypto.getRandomValues(data);
    return Array.prototype.map.call(data, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  function loadSession() {
    var id = null;
    try { id = localStorage.getItem(SESSION_KEY); } catch (e) { id = null; }
    return id && SESSION_RE.test(id) ? id : null;
  }

  // null forgets the stored one (the server refused it): the next hello asks for a new session.
  function saveSession(id) {
    session = id && SESSION_RE.test(id) ? id : null;
    try {
      if (session) { localStorage.setItem(SESSION_KEY, session); } else { localStorage.removeItem(SESSION_KEY); }
    } catch (e) { /* private mode: this tab only */ }
  }

  var session = loadSession();

  function setStatus(text, offline) {
    statusLine.textContent = text;
    statusLine.classList.toggle("offline", Boolean(offline));
  }

  function who(role, agent) {
    if (role === "customer") { return "You"; }
    if (role === "agent") { return (agent || "Support") + " · support team"; }
    if (role === "bot") { return "Assistant"; }
    return "";
  }

  // A link's target only when it is an absolute http(s) URL: a javascript: or data: one stays text.
  function safeUrl(url) {
    if (typeof url !== "string" || !url) { return null; }
    try {
      var parsed = new URL(url);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) { return null; }
  }

  // The article an answer quotes, under its text: "Source: title › section", linked when it has a URL.
  // FAQ answers (kind "faq") cite nothing.
  function citation(source) {
    if (!source || source.kind !== "article") { return null; }
    var url = safeUrl(source.url);
    var label = [source.title, source.section].filter(function (part) { return part; }).map(String).join(" › ")
      || url || String(source.id || "");
    var line = document.createElement("div");
    line.className = "source";
    line.appendChild(document.createTextNode("Source: "));
    var target;
    if (url) {
      target = document.createElement("a");
      target.href = url;
      target.target = "_blank";
      target.rel = "noopener noreferrer";
    } else {
      target = document.createElement("span");
    }
    target.textContent = label;
    line.appendChild(target);
    return line;
  }

  function addMessage(role, text, agent, suggestions, source) {
    var el = document.createElement("div");
    el.className = "msg msg-" + role;
    var label = who(role, agent);
    if (label) {
      var name = document.createElement("span");
      name.className = "who";
      name.textContent = label;
      el.appendChild(name);
    }
    var body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    el.appendChild(body);
    var cite = citation(source);
    if (cite) { el.appendChild(cite); }
    if (suggestions && suggestions.length) { el.appendChild(suggestionGroup(suggestions)); }
    log.appendChild(el);
    log.scrollTop = log.scrollHeight;
    return el;
  }

  // The buttons live inside the message they came with, so later messages never move or replace them:
  // a customer can scroll back and still pick an earlier one. A click only marks the choice.
  function suggestionGroup(items) {
    var group = document.createElement("div");
    group.className = "suggestions";
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Suggested replies");
    items.forEach(function (text) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = text;
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", function () {
        markChosen(button);
        send(text);
        input.focus();
      });
      group.appendChild(button);
    });
    return group;
  }

  function markChosen(button) {
    button.parentNode.querySelectorAll("button").forEach(function (other) {
      other.setAttribute("aria-pressed", String(other === button));
    });
  }

  function redraw(events) {
    log.replaceChildren();
    var previous = null;
    events.forEach(function (event) {
      var el = addMessage(event.role, event.text, event.agent, event.suggestions, event.source);
      // The server does not store which button was clicked; a customer message right after a set that
      // repeats one of its texts is that choice, so the mark survives a reload.
      if (event.role === "customer" && previous) {
        previous.querySelectorAll(".suggestions button").forEach(function (button) {
          if (button.textContent === event.text) { markChosen(button); }
        });
      }
      previous = el;
    });
    pending.forEach(function (item) {
      item.el = addMessage("customer", item.text, null);
      item.el.classList.add("pending");
    });
  }

  function isOpen() { return socket !== null && socket.readyState === WebSocket.OPEN && socket.ready; }

  function transmit(id, item) {
    item.socket = socket;
    socket.send(JSON.stringify({ type: "message", text: item.text, id: id }));
  }

  function send(text) {
    if (!text.trim()) { return; }
    var id = randomId(12);
    var item = { text: text, el: addMessage("customer", text, null), socket: null };
    item.el.classList.add("pending");
    pending.set(id, item);
    if (isOpen()) { transmit(id, item); }
  }

  function settle(id) {
    var item = pending.get(id);
    if (item) {
      item.el.classList.remove("pending");
      pending.delete(id);
    }
  }

  function onFrame(frame) {
    if (frame.type === "session") {
      saveSession(frame.session); // the server made our session: kept for the next reload
    } else if (frame.type === "history") {
      if (frame.id) { pending.delete(frame.id); } // that message and its replies are in the history now
      redraw(frame.events || []);
      socket.ready = true;
      setStatus("Connected", false);
      pending.forEach(function (item, id) { if (item.socket !== socket) { transmit(id, item); } });
    } else if (frame.type === "reply") {
      addMessage(frame.sender || "bot", frame.text || "", frame.agent, frame.suggestions, frame.source);
      if (frame.in_reply_to) { settle(frame.in_reply_to); }
    } else if (frame.type === "ack") {
      settle(frame.id);
    } else if (frame.type === "error") {
      if (frame.id) { settle(frame.id); }
      addMessage("error", frame.detail || "Something went wrong.", null);
    }
  }

  function connect() {
    var url = new URL("web/ws", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    setStatus(attempt ? "Reconnecting…" : "Connecting…", attempt > 0);
    var ws = new WebSocket(url.toString());
    socket = ws;
    ws.ready = false; // true once the history has been drawn: messages go out only after it
    ws.addEventListener("open", function () {
      attempt = 0;
      ws.send(JSON.stringify(session ? { type: "hello", session: session } : { type: "hello" }));
    });
    ws.addEventListener("message", function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (ws === socket) { onFrame(frame); }
    });
    ws.addEventListener("close", function (event) {
      if (ws !== socket) { return; }
      if (event.code === 1008) { saveSession(null); } // the server refused our id: ask for a new one
      var delay = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
      attempt += 1;
      setStatus("Offline, reconnecting in " + Math.ceil(delay / 1000) + " s", true);
      window.setTimeout(connect, delay);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value;
    if (!text.trim()) { return; }
    input.value = "";
    send(text);
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  connect();
}());
