/*
 * The staff console's one script: the idle sign-out warning, the live queue (server-sent
 * events, a count of urgent handoffs in the title, a short sound for a new one), the live
 * conversation on a handoff page, and sending replies without a reload.
 *
 * Everything shown is either HTML the server rendered and escaped, or text set with
 * textContent; nothing here builds HTML from data.
 */
(function () {
  "use strict";

  var body = document.body;
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = csrfMeta ? csrfMeta.getAttribute("content") : "";
  var RECONNECT_MS = 3000;

  function byId(id) {
    return document.getElementById(id);
  }

  var leaving = false;

  // Signed out for inactivity: end the session on the server too (a shared workstation may be
  // left open), then show the sign-in page, which says why.
  function signedOut() {
    if (leaving) {
      return;
    }
    leaving = true;
    var done = function () {
      window.location.assign("/login?expired=1");
    };
    if (!csrfToken || !window.fetch) {
      done();
      return;
    }
    fetch("/logout", {
      method: "POST",
      credentials: "same-origin",
      redirect: "manual",
      headers: { "X-CSRF-Token": csrfToken }
    }).then(done, done);
  }

  // -- Idle sign-out ----------------------------------------------------------------------
  var idle = {
    reset: function () {}
  };

  function setupIdle() {
    var idleSeconds = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
    if (!idleSeconds) {
      return;
    }
    var warnSeconds = parseInt(body.getAttribute("data-warn-seconds") || "120", 10);
    var box = byId("idle-warning");
    var countdown = byId("idle-countdown");
    var stay = byId("idle-stay");
    var deadline = Date.now() + idleSeconds * 1000;

    idle.reset = function () {
      deadline = Date.now() + idleSeconds * 1000;
      if (box) {
        box.hidden = true;
      }
    };

    window.setInterval(function () {
      var left = deadline - Date.now();
      if (left <= 0) {
        signedOut();
        return;
      }
      if (box && left <= warnSeconds * 1000) {
        var seconds = Math.ceil(left / 1000);
        countdown.textContent = Math.floor(seconds / 60) + ":" + ("0" + (seconds % 60)).slice(-2);
        box.hidden = false;
      }
    }, 1000);

    if (stay) {
      stay.addEventListener("click", function () {
        fetch("/session/ping", {
          method: "POST",
          credentials: "same-origin",
          redirect: "manual",
          headers: { "X-CSRF-Token": csrfToken }
        }).then(function (response) {
          if (response.status === 204) {
            idle.reset();
          } else {
            signedOut();
          }
        }, signedOut);
      });
    }
  }

  // -- Server-sent events with reconnection from where we were -----------------------------
  function stream(urlFn, handlers) {
    var source = null;

    function connect() {
      source = new EventSource(urlFn());
      Object.keys(handlers).forEach(function (name) {
        source.addEventListener(name, function (event) {
          var data = {};
          try {
            data = JSON.parse(event.data || "{}");
          } catch (error) {
            return;
          }
          handlers[name](data);
        });
      });
      source.addEventListener("logout", function () {
        source.close();
        signedOut();
      });
      source.onerror = function () {
        // The server ends each stream after a while; reconnect with the latest position.
        source.close();
        window.setTimeout(connect, RECONNECT_MS);
      };
    }

    connect();
  }

  function withParam(url, name, value) {
    return url + (url.indexOf("?") === -1 ? "?" : "&") + name + "=" + encodeURIComponent(value);
  }

  // -- Sound for a new urgent handoff (Web Audio, no file) --------------------------------
  var audioContext = null;

  function audio() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) {
      return null;
    }
    if (!audioContext) {
      audioContext = new Context();
    }
    if (audioContext.state === "suspended") {
      audioContext.resume();
    }
    return audioContext;
  }

  // Browsers allow sound only after the page was used once; the first click unlocks it.
  document.addEventListener("click", function () {
    audio();
  }, { once: true });

  function chime() {
    var alerts = parseInt(body.getAttribute("data-urgent-alerts") || "0", 10) + 1;
    body.setAttribute("data-urgent-alerts", String(alerts));
    var context = audio();
    if (!context) {
      return;
    }
    [880, 660].forEach(function (frequency, index) {
      var start = context.currentTime + index * 0.22;
      var oscillator = context.createOscillator();
      var gain = context.createGain();
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.25, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.2);
      oscillator.connect(gain);
      gain.connect(context.destination);
      oscillator.start(start);
      oscillator.stop(start + 0.21);
    });
  }

  // -- The live queue --------------------------------------------------------------------
  function setupQueue() {
    var live = byId("queue-live");
    if (!live) {
      return;
    }
    var title = document.querySelector("title");
    var baseTitle = title.getAttribute("data-base-title") || document.title;
    var badge = byId("urgent-badge");
    var badgeCount = byId("urgent-count");
    var state = byId("live-state");
    var version = live.getAttribute("data-version") || "";
    var known = {};
    (live.getAttribute("data-urgent-ids") || "").split(",").forEach(function (id) {
      if (id) {
        known[id] = true;
      }
    });

    function showCount(count) {
      document.title = count > 0 ? "(" + count + ") " + baseTitle : baseTitle;
      if (badge) {
        badge.hidden = count === 0;
        badgeCount.textContent = String(count);
      }
    }

    showCount(parseInt(badgeCount ? badgeCount.textContent : "0", 10) || 0);

    stream(function () {
      return withParam(live.getAttribute("data-events"), "version", version);
    }, {
      queue: function (data) {
        version = data.version || version;
        live.innerHTML = data.html || "";
        var fresh = false;
        var now = {};
        (data.urgent_ids || []).forEach(function (id) {
          var key = String(id);
          now[key] = true;
          if (!known[key]) {
            fresh = true;
          }
        });
        known = now;
        showCount(data.urgent_count || 0);
        if (fresh) {
          chime();
          if (badge) {
            badge.classList.remove("flash");
            void badge.offsetWidth;
            badge.classList.add("flash");
          }
        }
        if (state && data.updated) {
          state.textContent = "Updated " + data.updated + ".";
        }
      }
    });
  }

  // -- The live conversation -------------------------------------------------------------
  var WHO = { patient: "Patient", assistant: "Assistant", staff: "Staff", system: "Note" };

  function lineElement(line) {
    var item = document.createElement("li");
    item.className = "line line-" + (WHO[line.who] ? line.who : "system");
    item.setAttribute("data-who", line.who);
    var who = document.createElement("span");
    who.className = "line-who";
    who.textContent = line.who === "staff" && line.staff_name ? line.staff_name
      : (WHO[line.who] || "Note");
    var text = document.createElement("span");
    text.className = "line-text";
    text.textContent = line.text;
    item.appendChild(who);
    item.appendChild(text);
    if (line.buttons && line.buttons.length) {
      var buttons = document.createElement("span");
      buttons.className = "line-buttons";
      buttons.textContent = "Offered: " + line.buttons.join(" · ");
      item.appendChild(buttons);
    }
    var at = document.createElement("time");
    at.className = "line-at";
    at.setAttribute("datetime", line.at);
    at.textContent = line.when || "";
    item.appendChild(at);
    return item;
  }

  function setupConversation() {
    var list = byId("transcript");
    if (!list || !list.getAttribute("data-events")) {
      return;
    }
    var base = list.getAttribute("data-events").split("?")[0];
    var count = list.querySelectorAll("li").length;
    var takeover = document.querySelector("[data-testid=takeover]");
    var status = document.createElement("p");
    status.className = "muted small live-status";
    status.setAttribute("role", "status");
    list.parentNode.insertBefore(status, list.nextSibling);

    stream(function () {
      return withParam(base, "after", count);
    }, {
      lines: function (data) {
        var empty = byId("transcript-empty");
        if (empty) {
          empty.remove();
        }
        (data.lines || []).forEach(function (line) {
          list.appendChild(lineElement(line));
        });
        count = typeof data.count === "number" ? data.count : list.querySelectorAll("li").length;
        status.textContent = "";
        list.lastElementChild && list.lastElementChild.scrollIntoView({ block: "nearest" });
      },
      reset: function () {
        while (list.firstChild) {
          list.removeChild(list.firstChild);
        }
        count = 0;
      },
      holder: function (data) {
        if (!takeover) {
          return;
        }
        var shown = takeover.getAttribute("data-holder") || "";
        var now = data.holder || "";
        takeover.setAttribute("data-live-holder", now);
        if (now !== shown) {
          status.textContent = now ? now + " is now replying in this conversation. Reload to see the controls."
            : "The assistant has the conversation again. Reload to see the controls.";
        }
      },
      unavailable: function () {
        status.textContent = "The assistant's server is not answering; new messages will appear when it is back.";
      }
    });
  }

  function setupReply() {
    var form = byId("reply-form");
    if (!form || !window.fetch) {
      return;
    }
    var text = byId("reply-text");
    var error = byId("reply-error");
    var button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      button.disabled = true;
      fetch(form.getAttribute("action"), {
        method: "POST",
        credentials: "same-origin",
        redirect: "manual",
        headers: {
          "Accept": "application/json",
          "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
          "X-CSRF-Token": csrfToken
        },
        body: new URLSearchParams(new FormData(form)).toString()
      }).then(function (response) {
        if (response.type === "opaqueredirect") {
          signedOut();
          return null;
        }
        return response.json().then(function (data) {
          if (response.ok) {
            idle.reset();
            text.value = "";
            text.focus();
          } else {
            error.textContent = data.error || "The reply could not be sent.";
            error.hidden = false;
          }
        });
      }).catch(function () {
        error.textContent = "The reply could not be sent: the console did not answer.";
        error.hidden = false;
      }).then(function () {
        button.disabled = false;
      });
    });
    text.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit ? form.requestSubmit() : button.click();
      }
    });
  }

  setupIdle();
  setupQueue();
  setupConversation();
  setupReply();
})();
