/* chatroom: the chat page.
 *
 * One WebSocket to the server (path `ws` next to this page, `ws:` or `wss:`
 * after the page's own scheme). Each text message is one line of the chat
 * protocol (PROTOCOL.md), the same lines `nc` sees on TCP.
 *
 * Logging in works like chat-client (src/client/login.rs): the page sends
 * `/ids on` (and `/since LAST` after a reconnect) and a `/ping` barrier, then
 * the name and a second barrier. Everything before the first barrier's pong
 * is the greeting and answers to those commands (hidden); a join notice for
 * the offered name before the second pong means "in", the pong without it
 * means "refused". The page keeps the connection alive with its own pings,
 * reconnects with backoff, and resumes from the id of the last public line
 * it saw, so no line is lost or shown twice.
 *
 * Every line is put on screen with textContent, never as HTML.
 */
'use strict';

/** Prefix of every notice (PROTOCOL.md section 2). */
const NOTICE = '[SERVER]: ';
/** Ping when nothing was sent for this long (the server closes after 120 s). */
const KEEPALIVE_MS = 20000;
/** A ping unanswered, and nothing else heard, for this long: connection lost. */
const DEAD_MS = 40000;
/** A WebSocket still not open after this long is given up and retried. */
const CONNECT_MS = 10000;
/** Reconnect delays: 1 s, doubling, at most 8 s. */
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 8000;
/** After a reconnect, how long to keep asking for a name the server still holds. */
const NAME_WAIT_MS = 10000;
/** Time between two tries of a held name. */
const NAME_STEP_MS = 1000;
/** Longest name, in characters (PROTOCOL.md section 3.2). */
const NAME_MAX = 32;
/** `/who` counts toward the rate limit: refresh the online list this rarely. */
const WHO_EVERY_MS = 5 * 60 * 1000;
/** Messages kept on screen; older ones are removed. */
const MAX_MESSAGES = 2000;
/** Lines the entry's Up/Down history remembers. */
const MAX_SENT = 100;

/* ------------------------------------------------------------------ */
/* Lines: what a server line is. Plain functions, no DOM.             */
/* ------------------------------------------------------------------ */

const Lines = {
  /** `@ID rest` -> {id: 'ID', rest}; only a public line starts with `@`, digits, space. */
  splitId(line) {
    const m = /^@(\d+) /.exec(line);
    return m ? { id: m[1], rest: line.slice(m[0].length) } : { id: null, rest: line };
  },

  /** What a server line (its id already split off) is. */
  parse(line) {
    if (line === '/pong' || line.startsWith('/pong ')) {
      return { kind: 'pong', token: line.slice(6), text: line };
    }
    if (line.startsWith(NOTICE)) {
      return Lines.notice(line.slice(NOTICE.length));
    }
    let m = /^\[PM from ([^\s:[\]*]+)\]: ([\s\S]*)$/.exec(line);
    if (m) return { kind: 'pm-from', name: m[1], text: m[2] };
    m = /^\[PM to ([^\s:[\]*]+)\]: ([\s\S]*)$/.exec(line);
    if (m) return { kind: 'pm-to', name: m[1], text: m[2] };
    m = /^\* ([^\s:[\]*]+) ([\s\S]*)$/.exec(line);
    if (m) return { kind: 'action', name: m[1], text: m[2] };
    m = /^([^\s:[\]*]+): ([\s\S]*)$/.exec(line);
    if (m) return { kind: 'chat', name: m[1], text: m[2] };
    return { kind: 'other', text: line };
  },

  /** A notice's text (after `[SERVER]: `), with the events the page follows. */
  notice(text) {
    const n = { kind: 'notice', event: null, text };
    let m;
    if ((m = /^(\S+) joined the chat!$/.exec(text))) {
      n.event = 'join';
      n.name = m[1];
    } else if ((m = /^(\S+) left the chat\.(?: \(.*\))?$/.exec(text))) {
      n.event = 'leave';
      n.name = m[1];
    } else if ((m = /^(\S+) has disconnected(?: \(.*\))?\.$/.exec(text))) {
      n.event = 'leave';
      n.name = m[1];
    } else if ((m = /^(\S+) is now known as (\S+)\.$/.exec(text))) {
      n.event = 'nick';
      n.old = m[1];
      n.name = m[2];
    } else if ((m = /^\d+ users? online: (.*)$/.exec(text))) {
      n.event = 'who';
      n.names = m[1] ? m[1].split(', ') : [];
    } else if (/^History \(\d+ lines?\):$/.test(text)) {
      n.event = 'history';
    } else if (text === 'End of history.') {
      n.event = 'history-end';
    } else if (text.startsWith('Sorry, ')) {
      n.event = 'sorry';
    }
    return n;
  },

  /** True if sending `text` leaves the room (`/quit [REASON]`, `!quit`, `{exit}`). */
  isQuit(text) {
    const t = text.trim();
    return /^\/quit(\s|$)/i.test(t) || /^(!quit|\{exit\})$/i.test(t);
  },
};

/* ------------------------------------------------------------------ */
/* Names: which name to try after a reconnect (as login.rs's Names).  */
/* ------------------------------------------------------------------ */

/** The k-th fallback for `name`: k underscores, the name cut to stay within NAME_MAX. */
function variant(name, k) {
  if (k === 0) return name;
  const keep = NAME_MAX - k;
  if (keep <= 0) return null;
  return Array.from(name).slice(0, keep).join('') + '_'.repeat(k);
}

/** Tries `wanted` for up to NAME_WAIT_MS while it is refused, then name_, name__, ... */
class Names {
  constructor(wanted) {
    this.wanted = wanted;
    this.trying = wanted;
    this.suffix = 0;
    this.firstRefusal = null;
  }

  /** The name being tried was refused at `now`: {retryAt}, {next} or {} (none left). */
  refused(now) {
    if (this.suffix === 0) {
      if (this.firstRefusal === null) this.firstRefusal = now;
      const until = this.firstRefusal + NAME_WAIT_MS;
      if (now < until) return { retryAt: Math.min(now + NAME_STEP_MS, until) };
    }
    this.suffix += 1;
    const next = variant(this.wanted, this.suffix);
    if (next === null) return {};
    this.trying = next;
    return { next };
  }
}

/* ------------------------------------------------------------------ */
/* State                                                              */
/* ------------------------------------------------------------------ */

const S = {
  /** prompt: asking for a name; joining: a typed name is on its way;
   *  chat: in the room; away: connection lost, coming back by itself;
   *  left: the user left (or the tab is hidden away). */
  phase: 'prompt',
  /** The WebSocket, while one is open or opening. */
  ws: null,
  /** This connection's login: see connect(). */
  conn: null,
  /** The name we have in the room. */
  me: null,
  /** Name policy for automatic logins, once a name has been accepted. */
  names: null,
  /** The name typed in the prompt. */
  wanted: '',
  /** Id of the last public line seen (a string of digits), for `/since`. */
  lastId: null,
  /** Start of our ping tokens, so another tab's or a typed `/ping` is never hidden. */
  prefix: 'pg' + Math.random().toString(36).slice(2, 8) + '-',
  seq: 0,
  /** Tokens of our own pings whose `/pong` is still to be hidden. */
  hide: new Set(),
  /** Our own `/who` requests whose answers are still to be hidden. */
  whoPending: 0,
  whoAt: 0,
  /** True between `History (K lines):` and `End of history.`. */
  inHistory: false,
  /** True once the user asked to leave, so the close is not a loss. */
  quitting: false,
  /** True while the page is hidden away (pagehide) after being in the room. */
  suspended: false,
  backoff: BACKOFF_MIN_MS,
  retryTimer: null,
  retryAt: 0,
  /** Failed connection attempts since the last time the page was in. */
  tries: 0,
  nameTimer: null,
  connectAt: 0,
  lastTx: 0,
  /** When our unanswered keepalive ping was sent (0: none outstanding). */
  pingSince: 0,
  /** Who is online: folded name -> name. */
  online: new Map(),
  /** Lines that arrived while scrolled up / while the tab was hidden. */
  unseen: 0,
  unread: 0,
  /** Lines the user sent, for Up/Down in the entry. */
  sent: [],
  sentAt: 0,
};

const ui = {};

/* ------------------------------------------------------------------ */
/* Connection                                                         */
/* ------------------------------------------------------------------ */

/** `ws:`/`wss:` URL of `ws` next to this page (`/ws` when the page is `/`). */
function wsUrl() {
  const u = new URL('ws', window.location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.hash = '';
  u.search = '';
  return u.href;
}

/** A fresh ping token of ours; its `/pong` will be hidden. */
function token(kind) {
  S.seq += 1;
  const t = S.prefix + kind + S.seq;
  S.hide.add(t);
  return t;
}

/** Sends lines as one WebSocket message (the server splits it at LF). */
function send(lines) {
  if (!S.ws || S.ws.readyState !== WebSocket.OPEN) return false;
  S.ws.send(lines.join('\n'));
  S.lastTx = Date.now();
  return true;
}

function connect() {
  clearTimeout(S.retryTimer);
  S.retryTimer = null;
  if (S.ws) return;
  let ws;
  try {
    ws = new WebSocket(wsUrl());
  } catch (e) {
    lost();
    return;
  }
  S.ws = ws;
  S.hide.clear();
  S.pingSince = 0;
  S.connectAt = Date.now();
  S.conn = {
    /** True until the first barrier's pong: the greeting and command answers. */
    opening: true,
    /** True while an offered name waits for its verdict. */
    verdict: false,
    openToken: null,
    nameToken: null,
    offered: null,
    /** Lines between the offer and the join notice (welcome, history). */
    pending: [],
    /** The last notice not shown (said when the connection fails). */
    lastNotice: '',
  };
  ws.onopen = () => opened();
  ws.onmessage = (ev) => {
    if (typeof ev.data === 'string') received(ev.data);
  };
  ws.onclose = () => lost();
  showConn();
}

/** Gives the connection up (no answer, or never opened) as if it had closed. */
function drop() {
  const ws = S.ws;
  if (!ws) return;
  ws.onopen = ws.onmessage = ws.onclose = null;
  try {
    ws.close();
  } catch (e) {
    /* closing a broken socket may throw; it is gone either way */
  }
  lost();
}

function opened() {
  const c = S.conn;
  const lines = ['/ids on'];
  if (S.lastId !== null) lines.push('/since ' + S.lastId);
  c.openToken = token('o');
  lines.push('/ping ' + c.openToken);
  send(lines);
  offer(S.names ? S.names.trying : S.wanted);
}

/** Offers `name`, followed by a barrier whose pong gives the verdict. */
function offer(name) {
  const c = S.conn;
  c.offered = name;
  c.pending = [];
  c.verdict = true;
  c.nameToken = token('n');
  send([name, '/ping ' + c.nameToken]);
  showConn();
}

function received(line) {
  const c = S.conn;
  S.pingSince = 0;
  if (line.startsWith('/pong ') && S.hide.delete(line.slice(6))) {
    const t = line.slice(6);
    if (t === c.openToken) c.opening = false;
    else if (t === c.nameToken && c.verdict) refused();
    return;
  }
  if (c.opening) return remember(line);
  if (c.verdict) {
    const p = Lines.parse(Lines.splitId(line).rest);
    if (p.kind === 'notice' && p.event === 'join' && p.name === c.offered) {
      c.verdict = false;
      joined(c.offered, c.pending, line);
    } else {
      c.pending.push(line);
    }
    return;
  }
  if (S.phase === 'chat') show(line);
  else remember(line);
}

/** Keeps a notice that is not shown, to say why if the connection fails. */
function remember(line) {
  if (line.startsWith(NOTICE)) S.conn.lastNotice = line.slice(NOTICE.length);
}

function joined(name, pending, joinLine) {
  const back = S.names !== null;
  const wanted = S.names ? S.names.wanted : name;
  S.names = new Names(name);
  S.me = name;
  S.phase = 'chat';
  S.backoff = BACKOFF_MIN_MS;
  S.tries = 0;
  S.whoPending = 0;
  S.inHistory = false;
  ui.app.dataset.state = 'chat';
  ui.app.classList.remove('stale');
  ui.join.disabled = false;
  ui.join.textContent = 'Join';
  ui.loginError.hidden = true;
  if (back) status('Back in the chat.', 'ok');
  if (name !== wanted) status(`The name ${wanted} was taken; you are ${name} now.`, 'warn');
  for (const l of pending) show(l);
  show(joinLine);
  requestWho();
  showConn();
  if (!back) ui.entry.focus();
}

function refused() {
  const c = S.conn;
  c.verdict = false;
  const why = c.pending
    .filter((l) => l.startsWith(NOTICE))
    .map((l) => l.slice(NOTICE.length))
    .join(' ');
  if (S.names === null) {
    // The user chose this name: say why here, and ask again.
    S.phase = 'prompt';
    promptError(
      why.replace(/\s*Please choose another name:?\s*$/, '') || `The name ${c.offered} was refused.`,
    );
    showConn();
    return;
  }
  // Logging in again by itself: the old connection may still hold the name.
  const first = S.names.firstRefusal === null && S.names.suffix === 0;
  const r = S.names.refused(Date.now());
  if (r.retryAt !== undefined) {
    if (first) {
      status(`The name ${c.offered} is still taken (the server may still hold the old connection); trying again for up to ${NAME_WAIT_MS / 1000} s.`, 'warn');
    }
    clearTimeout(S.nameTimer);
    S.nameTimer = setTimeout(() => {
      if (S.conn === c && S.ws) offer(S.names.trying);
    }, r.retryAt - Date.now());
  } else if (r.next !== undefined) {
    status(`The name ${c.offered} is taken; trying ${r.next}.`, 'warn');
    offer(r.next);
  } else {
    status(`No free name left to try after ${c.offered}.`, 'error');
    S.quitting = true;
    drop();
  }
}

/** The connection closed, failed or was given up. */
function lost() {
  const c = S.conn;
  S.ws = null;
  S.conn = null;
  clearTimeout(S.nameTimer);
  S.inHistory = false;
  if (S.quitting) {
    leftRoom();
    return;
  }
  switch (S.phase) {
    case 'chat':
      status('Connection lost.', 'error');
      S.phase = 'away';
      ui.app.classList.add('stale');
      schedule();
      break;
    case 'away':
      schedule();
      break;
    case 'joining': {
      const why = c && c.lastNotice ? ` (${c.lastNotice})` : '';
      const secs = schedule() / 1000;
      promptError(`Cannot reach the server${why}. Trying again in ${secs} s…`);
      break;
    }
    default:
      // prompt (the server let an unanswered prompt time out), left: connect on demand.
      break;
  }
  showConn();
}

/** Tries again after the current backoff, then doubles it; returns the delay. */
function schedule() {
  const delay = S.backoff;
  S.backoff = Math.min(S.backoff * 2, BACKOFF_MAX_MS);
  S.tries += 1;
  S.retryAt = Date.now() + delay;
  clearTimeout(S.retryTimer);
  S.retryTimer = setTimeout(connect, delay);
  return delay;
}

function retryNow() {
  if (S.retryTimer === null) return;
  connect();
}

function requestWho() {
  if (S.phase !== 'chat' || !send(['/who'])) return;
  S.whoPending += 1;
  S.whoAt = Date.now();
}

/** Once a second: keepalive, dead-connection check, `/who` refresh, countdown. */
function tick() {
  const now = Date.now();
  const ws = S.ws;
  if (ws && ws.readyState === WebSocket.CONNECTING && now - S.connectAt >= CONNECT_MS) {
    drop();
  } else if (ws && ws.readyState === WebSocket.OPEN && S.phase === 'chat') {
    if (S.pingSince && now - S.pingSince >= DEAD_MS) {
      drop();
    } else if (!S.pingSince && now - S.lastTx >= KEEPALIVE_MS) {
      send(['/ping ' + token('k')]);
      S.pingSince = now;
    }
    if (now - S.whoAt >= WHO_EVERY_MS) requestWho();
  }
  if (S.retryTimer !== null) showConn();
}

/** Leaves the room for good (the user's `/quit`), keeping what is on screen. */
function leftRoom() {
  S.phase = 'left';
  S.quitting = false;
  clearTimeout(S.retryTimer);
  S.retryTimer = null;
  ui.app.classList.remove('stale');
  setOnline([]);
  status('You left the chat.', 'ok');
  ui.app.dataset.state = 'left';
  ui.left.hidden = false;
  ui.rejoin.focus();
  showConn();
}

/* ------------------------------------------------------------------ */
/* Lines on screen                                                    */
/* ------------------------------------------------------------------ */

/** Handles one line while in the room: follow its events, then show it. */
function show(line) {
  const { id, rest } = Lines.splitId(line);
  if (id !== null) S.lastId = id;
  const p = Lines.parse(rest);
  const past = S.inHistory;
  if (p.kind === 'notice') {
    switch (p.event) {
      case 'who':
        setOnline(p.names);
        if (S.whoPending > 0) {
          S.whoPending -= 1;
          return;
        }
        break;
      case 'history':
        S.inHistory = true;
        return addDivider(p.text);
      case 'history-end':
        S.inHistory = false;
        return addDivider(p.text);
      case 'join':
        if (!past) addOnline(p.name);
        break;
      case 'leave':
        if (!past) removeOnline(p.name);
        break;
      case 'nick':
        if (!past) renamed(p.old, p.name);
        break;
      default:
        break;
    }
  }
  addMessage(p, id, past);
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A hue from a name, so each name keeps its colour. */
function hue(name) {
  let h = 0;
  for (const ch of name.toLowerCase()) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function nameEl(name) {
  const b = el('button', 'who', name);
  b.type = 'button';
  b.title = `Write to ${name} privately`;
  b.style.setProperty('--hue', hue(name));
  b.dataset.name = name;
  return b;
}

function clock() {
  const d = new Date();
  return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
}

function addMessage(p, id, past) {
  const li = el('li', 'msg msg-' + p.kind);
  li.dataset.kind = p.kind;
  if (p.event) li.dataset.event = p.event;
  if (id !== null) li.dataset.id = id;
  if (past) li.classList.add('past');
  const own = (p.kind === 'chat' || p.kind === 'action') && p.name === S.me;
  if (own) li.classList.add('own');
  li.append(el('time', 'time', past ? '' : clock()));
  const body = el('div', 'body');
  switch (p.kind) {
    case 'chat':
      body.append(nameEl(p.name), el('span', 'text', p.text));
      break;
    case 'action':
      body.append(el('span', 'star', '*'), nameEl(p.name), el('span', 'text', p.text));
      break;
    case 'pm-from':
      body.append(el('span', 'tag', 'PM from'), nameEl(p.name), el('span', 'text', p.text));
      break;
    case 'pm-to':
      body.append(el('span', 'tag', 'PM to'), nameEl(p.name), el('span', 'text', p.text));
      break;
    default:
      body.append(el('span', 'text', p.text));
      break;
  }
  li.append(body);
  const loud = p.kind === 'chat' || p.kind === 'action' || p.kind === 'pm-from';
  append(li, own, loud && !own && !past);
}

function addDivider(text) {
  const li = el('li', 'msg msg-divider');
  li.dataset.kind = 'divider';
  li.append(el('span', 'text', text));
  append(li, false, false);
}

/** A line of the page's own (connection state, name changes). */
function status(text, tone) {
  const li = el('li', 'msg msg-status tone-' + tone);
  li.dataset.kind = 'status';
  li.append(el('time', 'time', clock()), el('div', 'body'));
  li.lastChild.append(el('span', 'text', text));
  append(li, false, false);
}

function atBottom() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 48;
}

function scrollDown() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
  S.unseen = 0;
  ui.jump.hidden = true;
}

/** Appends `li`; follows the end unless the user has scrolled up. */
function append(li, own, loud) {
  const stick = own || atBottom();
  ui.messages.append(li);
  while (ui.messages.children.length > MAX_MESSAGES) {
    const first = ui.messages.firstElementChild;
    const h = first.offsetHeight;
    first.remove();
    if (!stick) ui.messages.scrollTop -= h;
  }
  if (stick) {
    scrollDown();
  } else {
    S.unseen += 1;
    ui.jump.textContent = `${S.unseen} new ↓`;
    ui.jump.hidden = false;
  }
  if (loud && document.hidden) {
    S.unread += 1;
    document.title = `(${S.unread}) chatroom`;
  }
}

/* ------------------------------------------------------------------ */
/* Who is online                                                      */
/* ------------------------------------------------------------------ */

function fold(name) {
  return name.toLowerCase();
}

function setOnline(names) {
  S.online = new Map(names.map((n) => [fold(n), n]));
  showOnline();
}

function addOnline(name) {
  S.online.set(fold(name), name);
  showOnline();
}

function removeOnline(name) {
  S.online.delete(fold(name));
  showOnline();
}

function renamed(old, name) {
  S.online.delete(fold(old));
  S.online.set(fold(name), name);
  if (old === S.me) {
    S.me = name;
    S.names = new Names(name);
    showConn();
  }
  showOnline();
}

function showOnline() {
  const names = [...S.online.values()].sort((a, b) =>
    a.localeCompare(b, undefined, { sensitivity: 'base' }),
  );
  const items = names.map((n) => {
    const li = el('li', n === S.me ? 'person me' : 'person');
    const dot = el('span', 'avatar', Array.from(n)[0].toUpperCase());
    dot.style.setProperty('--hue', hue(n));
    dot.setAttribute('aria-hidden', 'true');
    const b = nameEl(n);
    li.append(dot, b);
    if (n === S.me) li.append(el('span', 'you', 'you'));
    return li;
  });
  ui.peopleList.replaceChildren(...items);
  ui.peopleCount.textContent = String(names.length);
  ui.peopleCount2.textContent = String(names.length);
}

/* ------------------------------------------------------------------ */
/* Header, prompt, entry                                              */
/* ------------------------------------------------------------------ */

/** The connection indicator in the header. */
function showConn() {
  let state = 'off';
  let text = 'Not connected';
  const waiting = S.retryTimer !== null;
  if (S.phase === 'chat' && S.ws) {
    state = 'on';
    text = `Connected as ${S.me}`;
  } else if (waiting) {
    state = 'away';
    const secs = Math.max(1, Math.ceil((S.retryAt - Date.now()) / 1000));
    text = `${S.phase === 'away' ? 'Reconnecting' : 'Trying again'} in ${secs} s…`;
  } else if (S.ws && S.ws.readyState === WebSocket.OPEN) {
    state = 'connecting';
    text = S.phase === 'prompt' ? 'Connected; choose a name' : 'Joining…';
  } else if (S.ws) {
    state = 'connecting';
    text = S.phase === 'away' ? 'Reconnecting…' : 'Connecting…';
  }
  ui.conn.dataset.conn = state;
  ui.conn.dataset.tries = String(S.tries);
  ui.connText.textContent = text;
  ui.retry.hidden = !waiting;
}

function promptError(text) {
  ui.loginError.textContent = text;
  ui.loginError.hidden = false;
  ui.join.disabled = false;
  ui.join.textContent = 'Join';
  ui.name.focus();
  ui.name.select();
}

function submitName(ev) {
  ev.preventDefault();
  const name = ui.name.value.trim();
  if (!name) {
    promptError('Please enter a name.');
    return;
  }
  S.wanted = name;
  try {
    localStorage.setItem('chatroom.name', name);
  } catch (e) {
    /* storage may be off; the name is only a convenience there */
  }
  ui.loginError.hidden = true;
  ui.join.disabled = true;
  ui.join.textContent = 'Joining…';
  S.phase = 'joining';
  S.backoff = BACKOFF_MIN_MS;
  if (S.ws && S.ws.readyState === WebSocket.OPEN && !S.conn.verdict) offer(name);
  else if (!S.ws) connect();
  showConn();
}

function submitLine(ev) {
  ev.preventDefault();
  const text = ui.entry.value;
  if (!text.trim()) return;
  if (S.phase !== 'chat' || !send([text])) {
    // The text stays in the box until the page is back.
    ui.conn.classList.remove('flash');
    void ui.conn.offsetWidth;
    ui.conn.classList.add('flash');
    ui.entry.focus();
    return;
  }
  if (Lines.isQuit(text)) S.quitting = true;
  if (S.sent[S.sent.length - 1] !== text) S.sent.push(text);
  if (S.sent.length > MAX_SENT) S.sent.shift();
  S.sentAt = S.sent.length;
  ui.entry.value = '';
  ui.entry.focus();
}

/** Up/Down walk through the lines sent before. */
function entryKey(ev) {
  if (ev.key !== 'ArrowUp' && ev.key !== 'ArrowDown') return;
  if (ev.isComposing || S.sent.length === 0) return;
  const at = S.sentAt + (ev.key === 'ArrowUp' ? -1 : 1);
  if (at < 0 || at > S.sent.length) return;
  ev.preventDefault();
  S.sentAt = at;
  ui.entry.value = at === S.sent.length ? '' : S.sent[at];
}

function rejoin() {
  ui.left.hidden = true;
  S.phase = 'prompt';
  S.names = null;
  ui.app.dataset.state = 'prompt';
  ui.name.value = S.me || S.wanted;
  ui.loginError.hidden = true;
  ui.name.focus();
  ui.name.select();
}

/** A name was clicked: start a private message to it. */
function writeTo(ev) {
  const b = ev.target.closest('button.who');
  if (!b || S.phase !== 'chat') return;
  const name = b.dataset.name;
  ui.entry.value = `/msg ${name} ` + ui.entry.value.replace(/^\/msg \S+ /, '');
  ui.app.classList.remove('people-open');
  ui.entry.focus();
  ui.entry.setSelectionRange(ui.entry.value.length, ui.entry.value.length);
}

/** On a narrow screen, a tap beside the open online list closes it. */
function closePeople(ev) {
  if (!ui.app.classList.contains('people-open') || ui.people.contains(ev.target)) return;
  if (ev.target.closest('#people-toggle')) return;
  ui.app.classList.remove('people-open');
  ui.peopleToggle.setAttribute('aria-expanded', 'false');
  ev.preventDefault();
  ev.stopPropagation();
}

function togglePeople() {
  const wide = window.matchMedia('(min-width: 760px)').matches;
  const cls = wide ? 'people-closed' : 'people-open';
  const on = ui.app.classList.toggle(cls);
  ui.peopleToggle.setAttribute('aria-expanded', String(wide ? !on : on));
}

/* Closing the tab leaves the room; coming back from the back/forward cache rejoins. */
function pageHidden() {
  if (S.phase === 'chat' || S.phase === 'away') S.suspended = true;
  clearTimeout(S.retryTimer);
  S.retryTimer = null;
  const ws = S.ws;
  if (!ws) return;
  ws.onopen = ws.onmessage = ws.onclose = null;
  if (ws.readyState === WebSocket.OPEN) ws.send('/quit');
  ws.close();
  S.ws = null;
  S.conn = null;
}

function pageShown(ev) {
  if (!ev.persisted || !S.suspended) return;
  S.suspended = false;
  S.phase = 'away';
  connect();
}

function init() {
  for (const id of [
    'app', 'conn', 'retry', 'messages', 'jump', 'name', 'join', 'entry', 'left', 'rejoin', 'people',
  ]) {
    ui[id] = document.getElementById(id);
  }
  ui.connText = document.getElementById('conn-text');
  ui.peopleToggle = document.getElementById('people-toggle');
  ui.peopleCount = document.getElementById('people-count');
  ui.peopleCount2 = document.getElementById('people-count2');
  ui.peopleList = document.getElementById('people-list');
  ui.loginError = document.getElementById('login-error');

  document.getElementById('login-form').addEventListener('submit', submitName);
  document.getElementById('composer').addEventListener('submit', submitLine);
  ui.entry.addEventListener('keydown', entryKey);
  ui.conn.addEventListener('click', retryNow);
  ui.rejoin.addEventListener('click', rejoin);
  ui.jump.addEventListener('click', scrollDown);
  ui.peopleToggle.addEventListener('click', togglePeople);
  ui.app.addEventListener('click', closePeople, true);
  ui.messages.addEventListener('click', writeTo);
  ui.peopleList.addEventListener('click', writeTo);
  ui.messages.addEventListener('scroll', () => {
    if (atBottom()) {
      S.unseen = 0;
      ui.jump.hidden = true;
    }
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) {
      S.unread = 0;
      document.title = 'chatroom';
    }
  });
  window.addEventListener('pagehide', pageHidden);
  window.addEventListener('pageshow', pageShown);

  try {
    ui.name.value = localStorage.getItem('chatroom.name') || '';
  } catch (e) {
    /* no storage: an empty prompt */
  }
  showConn();
  ui.name.focus();
  window.setInterval(tick, 1000);
}

document.addEventListener('DOMContentLoaded', init);
