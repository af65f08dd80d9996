/*
 * Clinic chat widget: vanilla JavaScript, no dependencies, no build step.
 *
 * Embed with one tag (the API base is derived from the script's own URL):
 *   <script src="https://chat.example.org/webhooks/widget/widget.js" defer></script>
 * Optional attributes on that tag: data-title="..." (panel title), data-launcher-label="...".
 *
 * Security notes:
 *  - Every message (bot or user) is rendered with textContent / text nodes only; this file never
 *    parses HTML strings at all (no inner/outer HTML assignment), so message content can never
 *    become markup.
 *  - The session token (not the sender id) is kept in localStorage; the server derives the
 *    sender id from the token's signed random part.
 *  - Requests are POSTed as text/plain JSON, a CORS "simple request" that needs no preflight.
 *  - The transcript is kept in sessionStorage only, so it is gone when the tab is closed.
 *
 * Live delivery: when the server says it has one (X-Widget-Stream on the session answer), the
 * widget keeps an EventSource open on stream?session=TOKEN, through which messages from the
 * care team (staff who took the conversation over) arrive without the visitor sending anything.
 * Each event's id is a cursor, kept in sessionStorage with the transcript; a new stream starts
 * after it (after=CURSOR), so nothing is shown twice or missed across reconnects and reloads.
 * The widget reconnects itself (never with a Last-Event-ID header, so a cross-origin stream
 * needs no preflight), backing off while the stream is unavailable.
 */
(function () {
  "use strict";

  var script = document.currentScript || findOwnScript();
  if (!script || !script.src) {
    return;
  }
  if (document.documentElement.hasAttribute("data-kcw-loaded")) {
    return; // Embedded twice: keep the first one.
  }
  document.documentElement.setAttribute("data-kcw-loaded", "");

  var BASE = new URL("./", script.src).href; // ".../webhooks/widget/"
  var MAX_CHARS = 2000;
  var MAX_TRANSCRIPT = 200;
  var REQUEST_TIMEOUT_MS = 30000;
  var NS = "kcw:v1:" + BASE;
  var TOKEN_KEY = NS + ":session";
  var TRANSCRIPT_KEY = NS + ":transcript";
  var OPEN_KEY = NS + ":open";
  var CURSOR_KEY = NS + ":cursor";
  var STREAM_HEADER = "X-Widget-Stream";
  var STREAM_RECONNECT_MS = 1000;
  var STREAM_BACKOFF_MAX_MS = 60000;
  var SVG_NS = "http://www.w3.org/2000/svg";

  var TEXT = {
    title: script.getAttribute("data-title") || "Chat with us",
    subtitle: "Automated assistant",
    footnote: "Not for medical emergencies",
    launcher: script.getAttribute("data-launcher-label") || "Chat with us",
    dialog: "Chat with the clinic\u2019s assistant",
    close: "Close chat",
    crisisLead: "In crisis?",
    log: "Conversation",
    inputLabel: "Your message",
    placeholder: "Type your message\u2026",
    send: "Send message",
    typing: "The assistant is typing\u2026",
    botPrefix: "Assistant: ",
    userPrefix: "You: ",
    staffRole: "Care team",
    newMessage: "New message from the care team",
    choices: "Suggested replies",
    clear: "Clear conversation",
    networkError:
      "We couldn\u2019t reach the chat just now. Please check your connection and try again.",
    serviceError:
      "The chat isn\u2019t available right now. Please try again in a few minutes.",
  };

  var ICONS = {
    chat: "M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6A.5.5 0 0 1 5 19.2V16h-.5A.5.5 0 0 1 4 15.5z",
    close: "M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6z",
    send: "M3.4 20.4 21 12 3.4 3.6 3.4 10.2 15 12 3.4 13.8z",
    heart: "M12 20.3 10.6 19C5.4 14.4 2 11.3 2 7.6 2 4.6 4.4 2.3 7.3 2.3c1.7 0 3.3.8 4.7 2.1 1.4-1.3 3-2.1 4.7-2.1 2.9 0 5.3 2.3 5.3 5.3 0 3.7-3.4 6.8-8.6 11.4z",
  };

  function findOwnScript() {
    var scripts = document.getElementsByTagName("script");
    for (var i = scripts.length - 1; i >= 0; i--) {
      if (/\/widget\.js(\?|#|$)/.test(scripts[i].src || "")) {
        return scripts[i];
      }
    }
    return null;
  }

  // ---------------------------------------------------------------- storage (never throws)
  function openStorage(name) {
    try {
      var storage = window[name];
      storage.setItem("kcw:probe", "1");
      storage.removeItem("kcw:probe");
      return storage;
    } catch (error) {
      return null; // Disabled, full, or blocked (e.g. third-party storage rules).
    }
  }

  var local = openStorage("localStorage");
  var tabStore = openStorage("sessionStorage");

  function readItem(storage, key) {
    try {
      return storage ? storage.getItem(key) : null;
    } catch (error) {
      return null;
    }
  }

  function writeItem(storage, key, value) {
    try {
      if (storage) {
        storage.setItem(key, value);
      }
    } catch (error) {
      /* Quota exceeded or storage blocked: the widget keeps working without persistence. */
    }
  }

  function removeItem(storage, key) {
    try {
      if (storage) {
        storage.removeItem(key);
      }
    } catch (error) {
      /* Ignored, as above. */
    }
  }

  function loadTranscript() {
    try {
      var value = JSON.parse(readItem(tabStore, TRANSCRIPT_KEY) || "[]");
      return Array.isArray(value) ? value.filter(isEntry) : [];
    } catch (error) {
      return [];
    }
  }

  function isEntry(entry) {
    if (entry && entry.who === "staff") {
      return typeof entry.staff === "string" && typeof entry.text === "string";
    }
    return (
      entry &&
      (entry.who === "bot" || entry.who === "user") &&
      (typeof entry.text === "string" || Array.isArray(entry.buttons))
    );
  }

  function saveTranscript() {
    writeItem(tabStore, TRANSCRIPT_KEY, JSON.stringify(transcript.slice(-MAX_TRANSCRIPT)));
  }

  // ---------------------------------------------------------------- DOM helpers
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (name === "text") {
        node.textContent = value;
      } else if (name === "className") {
        node.className = value;
      } else if (value !== false && value !== null && value !== undefined) {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function icon(path, className) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "kcw-icon " + (className || ""));
    var shape = document.createElementNS(SVG_NS, "path");
    shape.setAttribute("d", path);
    shape.setAttribute("fill", "currentColor");
    svg.appendChild(shape);
    return svg;
  }

  // ---------------------------------------------------------------- state
  var transcript = loadTranscript();
  var token = readItem(local, TOKEN_KEY);
  var sessionPromise = null;
  var streamAvailable = false;
  var stream = null;
  var streamToken = null;
  var streamTimer = null;
  var streamFailures = 0;
  var cursor = readItem(tabStore, CURSOR_KEY);
  var busy = false;
  var ui = null;
  var fullScreen = window.matchMedia ? window.matchMedia("(max-width: 480px)") : null;

  // ---------------------------------------------------------------- network
  function post(path, body) {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timer = controller
      ? setTimeout(function () {
          controller.abort();
        }, REQUEST_TIMEOUT_MS)
      : null;
    return fetch(BASE + path, {
      method: "POST",
      // text/plain keeps this a CORS "simple request": no preflight round trip.
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      mode: "cors",
      signal: controller ? controller.signal : undefined,
    }).finally(function () {
      if (timer) {
        clearTimeout(timer);
      }
    });
  }

  function HttpError(status) {
    this.name = "HttpError";
    this.status = status;
  }

  function requestSession(existing) {
    return post("session", existing ? { session: existing } : {})
      .then(function (res) {
        if (res.status === 403 && existing) {
          return requestSession(null); // Signed with an old secret: start afresh.
        }
        if (!res.ok) {
          throw new HttpError(res.status);
        }
        return res.json().then(function (data) {
          if (!data || typeof data.session !== "string") {
            throw new HttpError(res.status);
          }
          streamAvailable = res.headers.get(STREAM_HEADER) === "1";
          return data.session;
        });
      });
  }

  function ensureSession() {
    if (!sessionPromise) {
      var existing = token;
      sessionPromise = requestSession(existing).then(
        function (fresh) {
          if (fresh !== existing) {
            if (existing) {
              // A different conversation on the server: the old transcript no longer applies.
              clearTranscript();
            }
            token = fresh;
            writeItem(local, TOKEN_KEY, fresh);
          }
          startStream();
          return fresh;
        },
        function (error) {
          sessionPromise = null; // Retry on the next attempt.
          throw error;
        }
      );
    }
    return sessionPromise;
  }

  function renewSession() {
    stopStream();
    token = null;
    removeItem(local, TOKEN_KEY);
    sessionPromise = null;
    return ensureSession();
  }

  function sendToServer(message) {
    return ensureSession()
      .then(function (session) {
        return post("webhook", { session: session, message: message });
      })
      .then(function (res) {
        if (res.status === 403) {
          return renewSession().then(function (session) {
            return post("webhook", { session: session, message: message });
          });
        }
        return res;
      })
      .then(function (res) {
        if (!res.ok) {
          throw new HttpError(res.status);
        }
        return res.json();
      });
  }

  // ---------------------------------------------------------------- live stream
  function setCursor(value) {
    if (typeof value === "string" && /^[0-9]+(\.[0-9]+)?$/.test(value)) {
      cursor = value;
      writeItem(tabStore, CURSOR_KEY, value);
    }
  }

  function stopStream() {
    if (streamTimer) {
      clearTimeout(streamTimer);
      streamTimer = null;
    }
    if (stream) {
      stream.close();
      stream = null;
    }
    streamToken = null;
  }

  function startStream() {
    if (!streamAvailable || !token || typeof EventSource !== "function") {
      return;
    }
    if (streamToken === token && (stream || streamTimer)) {
      return; // Already streaming this conversation.
    }
    stopStream();
    streamToken = token;
    openStream();
  }

  function openStream() {
    streamTimer = null;
    var url = BASE + "stream?session=" + encodeURIComponent(streamToken);
    if (cursor) {
      url += "&after=" + encodeURIComponent(cursor);
    }
    var source = new EventSource(url); // Without credentials: the token is the session.
    var opened = false;
    stream = source;
    source.onopen = function () {
      opened = true;
      streamFailures = 0;
    };
    source.addEventListener("ready", function (event) {
      setCursor(event.lastEventId);
    });
    source.onmessage = function (event) {
      receive(event);
    };
    source.onerror = function () {
      // The stream ended (it does so every few seconds) or could not be opened: reconnect
      // ourselves, from the cursor, rather than with the browser's Last-Event-ID retry.
      source.close();
      if (stream !== source) {
        return;
      }
      stream = null;
      var delay = STREAM_RECONNECT_MS;
      if (!opened) {
        streamFailures += 1;
        delay = Math.min(STREAM_BACKOFF_MAX_MS, STREAM_RECONNECT_MS * Math.pow(2, streamFailures));
      }
      streamTimer = setTimeout(openStream, delay);
    };
  }

  function receive(event) {
    var data;
    try {
      data = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    setCursor(event.lastEventId);
    if (!data || typeof data !== "object") {
      return;
    }
    var entry;
    if (typeof data.staff === "string" && data.staff && typeof data.text === "string") {
      entry = { who: "staff", staff: data.staff, text: data.text };
    } else {
      entry = botEntry(data);
      if (!entry) {
        return;
      }
    }
    addEntry(entry);
    if (ui && !isOpen()) {
      ui.launcher.classList.add("kcw-launcher--unread");
      ui.launcherLabel.textContent = TEXT.launcher + " (" + TEXT.newMessage + ")";
    }
  }

  /** A bot message from the server as a transcript entry, or null if there is nothing to show. */
  function botEntry(message) {
    var entry = { who: "bot" };
    if (typeof message.text === "string") {
      entry.text = message.text;
    }
    if (message.crisis === true) {
      entry.crisis = true;
    }
    if (Array.isArray(message.buttons)) {
      entry.buttons = message.buttons
        .filter(function (b) {
          return b && typeof b.title === "string" && typeof b.payload === "string";
        })
        .map(function (b) {
          return { title: b.title, payload: b.payload };
        });
    }
    return entry.text || (entry.buttons && entry.buttons.length) ? entry : null;
  }

  // ---------------------------------------------------------------- rendering
  function build() {
    var panelId = "kcw-panel-" + Math.random().toString(36).slice(2, 10);
    var titleId = panelId + "-title";
    var inputId = panelId + "-input";

    var launcher = el(
      "button",
      {
        type: "button",
        className: "kcw-launcher",
        "data-testid": "kcw-launcher",
        "aria-haspopup": "dialog",
        "aria-expanded": "false",
        "aria-controls": panelId,
      },
      [icon(ICONS.chat), el("span", { className: "kcw-launcher-label", text: TEXT.launcher })]
    );
    var launcherLabel = launcher.querySelector(".kcw-launcher-label");

    var closeButton = el(
      "button",
      { type: "button", className: "kcw-close", "aria-label": TEXT.close, title: TEXT.close },
      [icon(ICONS.close)]
    );

    var crisis = el("p", { className: "kcw-crisis", "data-testid": "kcw-crisis" }, [
      icon(ICONS.heart, "kcw-crisis-icon"),
      el("span", { className: "kcw-crisis-text" }, [
        el("strong", { text: TEXT.crisisLead }),
        " ",
        el("a", { className: "kcw-crisis-link", href: "tel:988", "aria-label": "Call 988", text: "Call" }),
        " or ",
        el("a", { className: "kcw-crisis-link", href: "sms:988", "aria-label": "Text 988", text: "text" }),
        " ",
        el("strong", { text: "988" }),
      ]),
    ]);

    var header = el("div", { className: "kcw-header" }, [
      el("div", { className: "kcw-header-row" }, [
        el("div", { className: "kcw-avatar", "aria-hidden": "true" }, [icon(ICONS.chat)]),
        el("div", { className: "kcw-heading" }, [
          el("h2", { className: "kcw-title", id: titleId, text: TEXT.title }),
          el("p", { className: "kcw-subtitle", text: TEXT.subtitle }),
        ]),
        closeButton,
      ]),
      crisis,
    ]);

    var log = el("div", {
      className: "kcw-log",
      role: "log",
      "aria-live": "polite",
      "aria-relevant": "additions",
      "aria-label": TEXT.log,
      "data-testid": "kcw-log",
      tabindex: "0",
    });

    var typing = el(
      "div",
      { className: "kcw-typing", role: "status", "data-testid": "kcw-typing", hidden: true },
      [
        el("span", { className: "kcw-dots", "aria-hidden": "true" }, [
          el("span", { className: "kcw-dot" }),
          el("span", { className: "kcw-dot" }),
          el("span", { className: "kcw-dot" }),
        ]),
        el("span", { className: "kcw-sr", text: TEXT.typing }),
      ]
    );

    var notice = el("div", {
      className: "kcw-notice",
      role: "alert",
      "data-testid": "kcw-notice",
      hidden: true,
    });

    var input = el("textarea", {
      id: inputId,
      className: "kcw-input",
      "data-testid": "kcw-input",
      rows: "1",
      maxlength: String(MAX_CHARS),
      placeholder: TEXT.placeholder,
      autocomplete: "off",
      spellcheck: "true",
      dir: "auto",
      enterkeyhint: "send",
    });

    var sendButton = el(
      "button",
      {
        type: "submit",
        className: "kcw-send",
        "data-testid": "kcw-send",
        "aria-label": TEXT.send,
        title: TEXT.send,
      },
      [icon(ICONS.send)]
    );

    var form = el("form", { className: "kcw-form", novalidate: true }, [
      el("label", { className: "kcw-sr", for: inputId, text: TEXT.inputLabel }),
      input,
      sendButton,
    ]);

    var clearButton = el("button", {
      type: "button",
      className: "kcw-clear",
      "data-testid": "kcw-clear",
      text: TEXT.clear,
    });

    var footer = el("div", { className: "kcw-footer" }, [
      el("p", { className: "kcw-footnote", text: TEXT.footnote }),
      clearButton,
    ]);

    var panel = el(
      "section",
      {
        id: panelId,
        className: "kcw-panel",
        role: "dialog",
        "aria-label": TEXT.dialog,
        "aria-modal": "false",
        "data-testid": "kcw-panel",
        hidden: true,
      },
      [header, log, typing, notice, form, footer]
    );

    // The crisis line is visible at all times: beside the launcher while the chat is closed,
    // and in the panel's header while it is open.
    var crisisPill = el("p", { className: "kcw-crisis-pill", "data-testid": "kcw-crisis-closed" }, [
      el("strong", { text: TEXT.crisisLead }),
      document.createTextNode(" "),
      el("a", { className: "kcw-crisis-link", href: "tel:988", "aria-label": "Call 988", text: "Call" }),
      document.createTextNode(" or "),
      el("a", { className: "kcw-crisis-link", href: "sms:988", "aria-label": "Text 988", text: "text" }),
      document.createTextNode(" 988"),
    ]);

    var root = el("div", { className: "kcw-root", "data-testid": "kcw-root" }, [
      crisisPill,
      launcher,
      panel,
    ]);
    root.setAttribute("lang", document.documentElement.lang || "en");

    var stylesheet = el("link", { rel: "stylesheet", href: BASE + "widget.css" });
    (document.head || document.documentElement).appendChild(stylesheet);
    document.body.appendChild(root);

    return {
      root: root,
      launcher: launcher,
      launcherLabel: launcherLabel,
      crisisPill: crisisPill,
      panel: panel,
      closeButton: closeButton,
      log: log,
      typing: typing,
      notice: notice,
      form: form,
      input: input,
      sendButton: sendButton,
      clearButton: clearButton,
    };
  }

  function scrollToEnd() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  /** Disable every suggested-reply button; returns the ones that were enabled. */
  function disableChoices() {
    var buttons = ui.log.querySelectorAll(".kcw-choice");
    var changed = [];
    for (var i = 0; i < buttons.length; i++) {
      if (!buttons[i].disabled) {
        buttons[i].disabled = true;
        changed.push(buttons[i]);
      }
    }
    return changed;
  }

  function renderEntry(entry, choicesActive) {
    var who = entry.who === "user" || entry.who === "staff" ? entry.who : "bot";
    var node = el("div", { className: "kcw-msg kcw-msg--" + who });
    if (who === "staff") {
      // The care team member's name, shown above their message (as text, never markup).
      node.appendChild(
        el("span", {
          className: "kcw-staff-name",
          "data-testid": "kcw-staff-name",
          dir: "auto",
          text: entry.staff + " \u00b7 " + TEXT.staffRole,
        })
      );
    }
    if (typeof entry.text === "string" && entry.text) {
      var prefix = who === "bot" ? TEXT.botPrefix : TEXT.userPrefix;
      if (who === "staff") {
        prefix = entry.staff + " (" + TEXT.staffRole + "): ";
      }
      node.appendChild(el("span", { className: "kcw-sr", text: prefix }));
      // textContent only: message content is never parsed as HTML.
      var bubble = el("p", {
        className: "kcw-bubble",
        "data-testid": "kcw-msg-" + who,
        dir: "auto",
        text: entry.text,
      });
      if (who === "bot" && entry.crisis === true) {
        // Crisis resources stand out, are announced at once, and keep the crisis line in
        // the header highlighted for the rest of the conversation.
        bubble.className += " kcw-bubble--crisis";
        bubble.setAttribute("role", "alert");
        bubble.setAttribute("data-crisis", "true");
        if (ui && ui.root) {
          ui.root.classList.add("kcw-root--crisis");
        }
      }
      node.appendChild(bubble);
    }
    var buttons = Array.isArray(entry.buttons) ? entry.buttons : [];
    if (who === "bot" && buttons.length) {
      var group = el("div", { className: "kcw-choices", role: "group", "aria-label": TEXT.choices });
      buttons.forEach(function (button) {
        if (!button || typeof button.title !== "string" || typeof button.payload !== "string") {
          return;
        }
        var choice = el("button", {
          type: "button",
          className: "kcw-choice",
          "data-testid": "kcw-choice",
          text: button.title,
        });
        choice.disabled = !choicesActive;
        choice.addEventListener("click", function () {
          send(button.payload, button.title);
          ui.input.focus(); // The clicked button is now disabled; keep focus somewhere useful.
        });
        group.appendChild(choice);
      });
      node.appendChild(group);
    }
    ui.log.appendChild(node);
    return node;
  }

  function renderTranscript() {
    while (ui.log.firstChild) {
      ui.log.removeChild(ui.log.firstChild);
    }
    var lastUser = -1;
    transcript.forEach(function (entry, index) {
      if (entry.who === "user") {
        lastUser = index;
      }
    });
    transcript.forEach(function (entry, index) {
      renderEntry(entry, index > lastUser);
    });
    scrollToEnd();
  }

  function addEntry(entry) {
    transcript.push(entry);
    saveTranscript();
    var node = renderEntry(entry, true);
    scrollToEnd();
    return node;
  }

  function clearTranscript() {
    transcript = [];
    removeItem(tabStore, TRANSCRIPT_KEY);
    // The cursor belongs to the conversation the transcript showed.
    cursor = null;
    removeItem(tabStore, CURSOR_KEY);
    if (ui) {
      renderTranscript();
    }
  }

  function showNotice(message) {
    ui.notice.textContent = message;
    ui.notice.hidden = false;
  }

  function hideNotice() {
    ui.notice.hidden = true;
    ui.notice.textContent = "";
  }

  function setBusy(value) {
    busy = value;
    ui.sendButton.disabled = value;
    ui.typing.hidden = !value;
    ui.panel.setAttribute("aria-busy", value ? "true" : "false");
    if (value) {
      scrollToEnd();
    }
  }

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight, 128) + "px";
  }

  // ---------------------------------------------------------------- conversation
  /**
   * Send a message. `payload` goes to the server; `display` (if given) is shown as the user's
   * message. The greeting is sent without a visible user message.
   */
  function send(payload, display) {
    if (busy || !payload) {
      return;
    }
    hideNotice();
    var reenabled = disableChoices();
    var pending = null;
    if (display) {
      pending = renderEntry({ who: "user", text: display }, false);
      scrollToEnd();
    }
    setBusy(true);
    sendToServer(payload)
      .then(function (data) {
        if (display) {
          if (pending && !pending.parentNode) {
            ui.log.appendChild(pending); // The log was reset by a session change meanwhile.
          }
          transcript.push({ who: "user", text: display });
        }
        var messages = data && Array.isArray(data.messages) ? data.messages : [];
        messages.forEach(function (message) {
          var entry = message ? botEntry(message) : null;
          if (entry) {
            transcript.push(entry);
            renderEntry(entry, true);
          }
        });
        saveTranscript();
        if (!messages.length && data && data.failed) {
          showNotice(TEXT.serviceError);
        }
      })
      .catch(function (error) {
        if (pending && pending.parentNode) {
          pending.parentNode.removeChild(pending);
        }
        if (display && payload === display && !ui.input.value) {
          ui.input.value = display; // Give typed text back so it can be sent again.
          autosize();
        }
        reenabled.forEach(function (button) {
          button.disabled = false;
        });
        showNotice(error instanceof HttpError ? TEXT.serviceError : TEXT.networkError);
      })
      .then(function () {
        setBusy(false);
        scrollToEnd();
      });
  }

  function submitInput() {
    var text = ui.input.value.trim();
    if (busy || !text) {
      return;
    }
    ui.input.value = "";
    autosize();
    send(text.slice(0, MAX_CHARS), text.slice(0, MAX_CHARS));
  }

  // ---------------------------------------------------------------- open / close
  function isOpen() {
    return !ui.panel.hidden;
  }

  function syncModality() {
    var modal = isOpen() && fullScreen && fullScreen.matches;
    ui.panel.setAttribute("aria-modal", modal ? "true" : "false");
    document.documentElement.classList.toggle("kcw-scroll-lock", Boolean(modal));
  }

  function open(moveFocus) {
    ui.panel.hidden = false;
    ui.launcher.hidden = true;
    ui.launcher.classList.remove("kcw-launcher--unread");
    ui.launcherLabel.textContent = TEXT.launcher;
    ui.crisisPill.hidden = true;
    ui.launcher.setAttribute("aria-expanded", "true");
    writeItem(tabStore, OPEN_KEY, "1");
    syncModality();
    scrollToEnd();
    if (moveFocus) {
      ui.input.focus();
    }
    if (!transcript.length && !busy) {
      send("/greet", null);
    }
  }

  function close() {
    ui.panel.hidden = true;
    ui.launcher.hidden = false;
    ui.crisisPill.hidden = false;
    ui.launcher.setAttribute("aria-expanded", "false");
    removeItem(tabStore, OPEN_KEY);
    syncModality();
    ui.launcher.focus();
  }

  function focusables() {
    return Array.prototype.filter.call(
      ui.panel.querySelectorAll("a[href], button, textarea, [tabindex='0']"),
      function (node) {
        return !node.disabled && !node.hidden && node.offsetParent !== null;
      }
    );
  }

  function onPanelKeydown(event) {
    if (event.key === "Escape" || event.key === "Esc") {
      event.preventDefault();
      close();
      return;
    }
    if (event.key === "Tab" && ui.panel.getAttribute("aria-modal") === "true") {
      // Full screen on a small display: keep focus inside, since the page is covered.
      var items = focusables();
      if (!items.length) {
        return;
      }
      var first = items[0];
      var last = items[items.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      }
    }
  }

  function clearConversation() {
    if (busy) {
      return; // Let the pending reply arrive first.
    }
    stopStream();
    clearTranscript();
    hideNotice();
    token = null;
    sessionPromise = null;
    removeItem(local, TOKEN_KEY);
    ui.input.value = "";
    autosize();
    ui.input.focus();
    send("/greet", null);
  }

  // ---------------------------------------------------------------- start
  function start() {
    ui = build();
    renderTranscript();

    ui.launcher.addEventListener("click", function () {
      open(true);
    });
    ui.closeButton.addEventListener("click", close);
    ui.clearButton.addEventListener("click", clearConversation);
    ui.panel.addEventListener("keydown", onPanelKeydown);
    ui.form.addEventListener("submit", function (event) {
      event.preventDefault();
      submitInput();
    });
    ui.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submitInput();
      }
    });
    ui.input.addEventListener("input", autosize);
    if (fullScreen) {
      var onChange = syncModality;
      if (fullScreen.addEventListener) {
        fullScreen.addEventListener("change", onChange);
      } else if (fullScreen.addListener) {
        fullScreen.addListener(onChange);
      }
    }

    if (token) {
      // Re-validate the stored session; if the server replaces it, the transcript is cleared.
      ensureSession().then(
        function () {
          if (isOpen() && !transcript.length && !busy) {
            send("/greet", null); // The stored conversation was replaced by a new one.
          }
        },
        function () {
          /* Offline: retried when the visitor sends a message. */
        }
      );
    } else if (transcript.length) {
      clearTranscript(); // A transcript without its session cannot be continued.
    }
    if (readItem(tabStore, OPEN_KEY)) {
      open(false); // Was open before this page load; don't steal focus from the page.
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
