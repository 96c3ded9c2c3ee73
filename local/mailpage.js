/* The local mail page. It reads the emulator's JSON API (/_local/messages) and builds every
 * element with textContent and attributes, never innerHTML: subjects, addresses and template
 * data are whatever a caller sent. The filters and the open mail live in the URL
 * (/?q=...&state=...&id=...), so a view can be reloaded, bookmarked and shared. */
"use strict";

(function () {
  const POLL_MS = 1500;
  const PAGE_SIZE = 100;
  // Event names as the page says them; the server's names stay in the JSON and in CSS classes.
  const LABELS = {
    queued: "queued", delivered: "delivered", deferred: "deferred", bounce: "bounced", dropped: "dropped",
    open: "opened", click: "clicked", spamreport: "spam report", unsubscribe: "unsubscribed",
  };
  const SIMULATE = [["open", "Open"], ["click", "Click"], ["bounce", "Bounce"], ["softbounce", "Soft bounce"],
    ["complaint", "Complaint"], ["unsubscribe", "Unsubscribe"]];
  const wide = window.matchMedia("(min-width: 761px)");
  const view = {
    q: "", state: "", id: null, limit: PAGE_SIZE, version: null, cursor: null, list: [], shown: null, all: 0,
  };

  function $(id) {
    return document.getElementById(id);
  }

  /* An element; `text` becomes its textContent, `on` its listeners, anything else an attribute. */
  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(([key, value]) => {
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key === "on") Object.entries(value).forEach(([type, fn]) => node.addEventListener(type, fn));
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    (children || []).forEach((child) => {
      if (child !== null && child !== undefined) node.append(child);  // a string becomes a text node
    });
    return node;
  }

  function label(name) {
    return LABELS[name] || String(name);
  }

  function badge(name, title) {
    const safe = String(name).replace(/[^a-z_]/g, "");
    return el("span", {class: "badge " + safe, text: label(name), title: title});
  }

  function setStatus(text, error) {
    const status = $("status");
    status.textContent = text || "";
    status.classList.toggle("error", Boolean(text && error));
  }

  async function api(path, options) {
    const reply = await fetch(path, Object.assign({headers: {Accept: "application/json"}, cache: "no-store"},
      options || {}));
    let body = null;
    try {
      body = await reply.json();
    } catch (ignored) {
      body = null;
    }
    if (!reply.ok) {
      const error = new Error(body && body.Error ? body.Error.Message : "HTTP " + reply.status);
      error.status = reply.status;
      throw error;
    }
    return body;
  }

  // ---- the URL ------------------------------------------------------------------------------------

  function readUrl() {
    const params = new URLSearchParams(location.search);
    view.q = params.get("q") || "";
    view.state = params.get("state") || "";
    view.id = params.get("id") || null;
    $("q").value = view.q;
    $("state").value = view.state;
  }

  function filters(extra) {
    const params = new URLSearchParams();
    if (view.q) params.set("q", view.q);
    if (view.state) params.set("state", view.state);
    Object.entries(extra || {}).forEach(([key, value]) => params.set(key, value));
    return params.toString();
  }

  function pageUrl(id) {
    const query = filters(id ? {id: id} : {});
    return "/" + (query ? "?" + query : "");
  }

  function writeUrl(push) {
    const url = pageUrl(view.id);
    if (url !== location.pathname + location.search) {
      history[push ? "pushState" : "replaceState"](null, "", url);
    }
  }

  // ---- the list -----------------------------------------------------------------------------------

  let refreshing = null;
  let again = false;

  /* Fetch the list and the open mail again; calls during a refresh run one more after it. */
  function refresh() {
    if (refreshing) {
      again = true;
      return refreshing;
    }
    refreshing = (async () => {
      do {
        again = false;
        const query = filters({limit: view.limit});
        const data = await api("/_local/messages?" + query);
        if (query !== filters({limit: view.limit})) {
          again = true;  // the search changed while this one was on its way
          continue;
        }
        renderList(data);
        view.version = data.Version;
        await loadDetail();
      } while (again);
    })().finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  function renderList(data) {
    const before = view.cursor;
    const items = data.Messages.map((m) => listItem(m, before !== null && m.Id > before));
    if (!items.length) {
      const text = view.q || view.state ? "No mail matches this search."
        : "No mail yet. Send one through the gateway (POST /send) or the SES API.";
      items.push(el("li", {class: "empty", text: text}));
    }
    $("messages").replaceChildren(...items);
    const plural = data.Total === 1 ? "" : "s";
    $("count").textContent = view.q || view.state ? data.Total + " matching mail" + plural
      : data.Total + " mail" + plural;
    $("more").hidden = data.Messages.length >= data.Total;
    view.cursor = data.Cursor;
    view.list = data.Messages;
  }

  function listItem(m, fresh) {
    const to = [].concat(m.To || [], m.Cc || [], m.Bcc || []);
    const names = Array.from(new Set(m.Events.map((e) => label(e.Event))));
    const link = el("a", {
      href: pageUrl(String(m.Id)), "data-id": m.Id, class: fresh ? "new" : null,
      on: {click: (event) => select(event, String(m.Id))},
    }, [
      el("span", {class: "subj", text: m.Subject || "(no subject)"}),
      badge(m.Badge, names.length ? "Events: " + names.join(", ") : "No event yet"),
      el("span", {class: "to", text: to.join(", ") || "(no recipient)"}),
      el("time", {class: "when", datetime: m.Date, title: m.Date, text: shortDate(m.Date)}),
    ]);
    return el("li", {}, [link]);
  }

  function shortDate(iso) {
    const date = new Date(iso);
    if (isNaN(date.getTime())) return iso;
    const today = new Date().toDateString() === date.toDateString();
    return today ? date.toLocaleTimeString() : date.toLocaleDateString() + " "
      + date.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  }

  function select(event, id) {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    view.id = id;
    writeUrl(true);
    if (!wide.matches) window.scrollTo(0, 0);
    loadDetail().catch(showError);
  }

  function markSelected(id) {
    document.querySelectorAll("#messages a[data-id]").forEach((link) => {
      const chosen = link.getAttribute("data-id") === id;
      link.classList.toggle("sel", chosen);
      if (chosen) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    });
  }

  // ---- the open mail ------------------------------------------------------------------------------

  let detailRequest = 0;

  /* Show the mail the URL names; on a wide screen with none named, the newest in the list. */
  async function loadDetail() {
    const id = view.id || (wide.matches && view.list.length ? String(view.list[0].Id) : null);
    document.body.classList.toggle("reading", Boolean(view.id));
    markSelected(id);
    const request = ++detailRequest;
    if (!id) {
      view.shown = null;
      $("message").replaceChildren(el("p", {class: "empty", text: view.list.length ? "Choose a mail."
        : "No mail to show."}));
      return;
    }
    let mail;
    try {
      mail = await api("/_local/messages/" + encodeURIComponent(id));
    } catch (error) {
      if (request !== detailRequest) return;
      if (error.status !== 404) throw error;
      view.shown = null;
      $("message").replaceChildren(backButton(), el("p", {class: "empty", text: "This mail is no longer stored."}));
      return;
    }
    if (request !== detailRequest) return;  // another mail was chosen meanwhile
    if (view.shown && view.shown.Id === mail.Id) updateDetail(mail);
    else renderDetail(mail);
    view.shown = mail;
  }

  function backButton() {
    return el("button", {type: "button", class: "back", text: "← All mail", on: {click: back}});
  }

  function back() {
    view.id = null;
    writeUrl(true);
    loadDetail().catch(showError);
  }

  function fieldTable(rows) {
    const body = rows.filter(([, value]) => value !== null && value !== undefined && value !== "")
      .map(([name, value]) => el("tr", {}, [el("th", {scope: "row", text: name}), el("td", {text: value})]));
    return el("div", {class: "scroll"}, [el("table", {class: "fields"}, [el("tbody", {}, body)])]);
  }

  function renderDetail(m) {
    const template = m.TemplateName ? m.TemplateID + " (" + m.TemplateName + ")" : m.TemplateID;
    const attachments = m.Attachments.length ? el("ul", {}, m.Attachments.map((a) => el("li", {}, [
      el("a", {href: a.Url, download: a.FileName, text: a.FileName}),
      " (" + a.ContentType + ", " + a.Size + " bytes)",
    ]))) : el("p", {text: "none"});
    $("message").replaceChildren(
      backButton(),
      el("h2", {id: "subject", text: m.Subject || "(no subject)"}),
      fieldTable([
        ["From", m.From], ["To", m.To.join(", ")], ["Cc", m.Cc.join(", ")], ["Bcc", m.Bcc.join(", ")],
        ["Reply-To", m.ReplyTo], ["Date", m.Date], ["MessageId", m.MessageId], ["TaskId", m.TaskId],
        ["Template", template],
        ["TemplateData", m.TemplateData === null || m.TemplateData === undefined ? null
          : JSON.stringify(m.TemplateData)],
      ]),
      simulateButtons(m),
      oneClickButton(m),
      el("h3", {}, ["Events ", badge(m.Badge, "The most telling event")]),
      el("div", {class: "scroll", id: "events-box"}, [eventsTable(m)]),
      el("h3", {text: "HTML"}),
      el("iframe", {sandbox: "", title: "HTML part", referrerpolicy: "no-referrer",
        src: "/_local/messages/" + m.Id + "/html"}),
      el("h3", {text: "Text"}),
      el("pre", {text: m.Text || "(no text part)"}),
      el("h3", {text: "Attachments"}),
      attachments,
      el("h3", {}, ["Headers ", el("a", {href: m.Raw, text: "(download .eml)"})]),
      fieldTable(m.Headers),
    );
  }

  /* The same mail again (an event came): only its events and badge change; the frame stays. */
  function updateDetail(m) {
    $("events-box").replaceChildren(eventsTable(m));
    const heading = $("events-box").previousElementSibling;
    heading.replaceChildren("Events ", badge(m.Badge, "The most telling event"));
  }

  function eventsTable(m) {
    const head = el("tr", {}, ["Time (UTC)", "Event", "Recipient", "Detail", "Callback"].map(
      (name) => el("th", {scope: "col", text: name})));
    const rows = m.Events.map((e) => el("tr", {}, [
      el("td", {text: new Date(e.Timestamp * 1000).toISOString().replace(".000Z", "Z")}),
      el("td", {}, [badge(e.Event)]),
      el("td", {"data-label": "Recipient", text: e.Email}),
      el("td", {"data-label": "Detail", text: e.BounceType || e.Link || e.Reason}),
      el("td", {"data-label": "Callback", text: e.Callback + (e.CallbackError ? " · " + e.CallbackError : "")}),
    ]));
    if (!rows.length) rows.push(el("tr", {}, [el("td", {colspan: 5, text: "No event yet."})]));
    return el("table", {id: "events"}, [el("thead", {}, [head]), el("tbody", {}, rows)]);
  }

  function simulateButtons(m) {
    const recipients = [].concat(m.To, m.Cc, m.Bcc);
    const who = el("select", {id: "recipient", "aria-label": "Recipient"},
      recipients.map((r) => el("option", {value: r, text: r})));
    const buttons = SIMULATE.map(([kind, text]) => el("button", {
      type: "button", "data-event": kind, text: text,
      on: {click: () => simulate(m.Id, kind, who.value, buttons)},
    }));
    return el("div", {class: "actions", role: "group", "aria-label": "Simulate an event"},
      [el("span", {text: "Simulate for"}), who, ...buttons]);
  }

  /* RFC 8058: a mail with List-Unsubscribe-Post gets the button a mailbox provider shows; the
     page's server posts the header's URL (this page may only talk to its own origin). */
  function oneClickButton(m) {
    const post = (m.Headers || []).find(([name]) => name.toLowerCase() === "list-unsubscribe-post");
    if (!post) return el("span", {});
    const result = el("span", {role: "status"});
    const button = el("button", {type: "button", text: "Unsubscribe (one-click)", on: {click: async () => {
      button.disabled = true;
      try {
        const answer = await api("/_local/messages/" + m.Id + "/one-click", {
          method: "POST", headers: {Accept: "application/json"}});
        result.textContent = "List-Unsubscribe answered " + answer.Status;
        await refresh();
      } catch (error) {
        showError(error);
      } finally {
        button.disabled = false;
      }
    }}});
    return el("div", {class: "actions", role: "group", "aria-label": "One-click unsubscribe"}, [button, result]);
  }

  async function simulate(id, kind, email, buttons) {
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api("/_local/messages/" + id + "/events", {
        method: "POST", headers: {Accept: "application/json", "Content-Type": "application/json"},
        body: JSON.stringify(email ? {Event: kind, Email: email} : {Event: kind}),
      });
      setStatus("");
      await refresh();
    } catch (error) {
      showError(error);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  // ---- clear all ----------------------------------------------------------------------------------

  /* A dialog asks first; where <dialog> is missing, the button must be pressed a second time. */
  function askClear() {
    const dialog = $("confirm-clear");
    const count = view.all === 1 ? "The 1 stored mail" : "All " + view.all + " stored mails";
    $("confirm-text").textContent = count + " and their events will be deleted, whatever the search shows. "
      + "This cannot be undone.";
    if (typeof dialog.showModal === "function") {
      dialog.returnValue = "";
      dialog.showModal();
      return;
    }
    const button = $("clear");
    if (button.getAttribute("data-armed")) {
      disarm();
      clearAll();
      return;
    }
    button.setAttribute("data-armed", "1");
    button.textContent = "Press again to delete all";
    setTimeout(disarm, 5000);
  }

  function disarm() {
    $("clear").removeAttribute("data-armed");
    $("clear").textContent = "Clear all";
  }

  async function clearAll() {
    try {
      const result = await api("/_local/messages", {method: "DELETE", headers: {Accept: "application/json"}});
      setStatus("Deleted " + result.Deleted + " mail" + (result.Deleted === 1 ? "" : "s") + ".");
      view.id = null;
      view.shown = null;
      writeUrl(false);
      await refresh();
    } catch (error) {
      showError(error);
    }
  }

  // ---- live updates -------------------------------------------------------------------------------

  let offline = false;

  function showError(error) {
    setStatus(error.message, true);
  }

  /* One cheap question per tick (the store's Version and size); a full refresh only on change. */
  async function poll() {
    try {
      if (!document.hidden) {
        const data = await api("/_local/messages?limit=0");
        view.all = data.Total;
        if (data.Version !== view.version) await refresh();
        if (offline) setStatus("");
        offline = false;
      }
    } catch (error) {
      offline = !error.status;
      setStatus(offline ? "The SES emulator does not answer; retrying…" : error.message, true);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  // ---- wiring -------------------------------------------------------------------------------------

  let typing = null;

  function applySearch() {
    clearTimeout(typing);
    view.q = $("q").value.trim();
    view.state = $("state").value;
    view.limit = PAGE_SIZE;
    writeUrl(false);
    refresh().then(() => setStatus(""), showError);
  }

  function start() {
    readUrl();
    $("q").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(applySearch, 250);
    });
    $("search").addEventListener("submit", (event) => {
      event.preventDefault();
      applySearch();
    });
    $("state").addEventListener("change", applySearch);
    $("more").addEventListener("click", () => {
      view.limit += PAGE_SIZE;
      refresh().catch(showError);
    });
    $("clear").addEventListener("click", askClear);
    $("confirm-clear").addEventListener("close", () => {
      if ($("confirm-clear").returnValue === "delete") clearAll();
    });
    window.addEventListener("popstate", () => {
      readUrl();
      refresh().catch(showError);
    });
    wide.addEventListener("change", () => loadDetail().catch(showError));
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) view.version = null;  // catch up at the next tick
    });
    poll();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
