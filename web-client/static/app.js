// The chat page (DESIGN.md §11): sign up / log in, my channels with unread
// counts, the public directory, one open channel with live messages, typing,
// presence and read pointer, and a socket that resumes every channel by
// `after_seq` after any outage. Uses only the public HTTP and WebSocket API.

import { createApi } from './api.js';
import { describe } from './errors.js';
import { MessageLog } from './messages.js';
import { ChatSocket } from './socket.js';
import { loadSession, saveSession, clearSession, sessionFromToken, rememberOpen, rememberedOpen } from './session.js';

const $ = (id) => document.getElementById(id);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** How often my channels and the directory are refreshed (invitations, new channels). */
const REFRESH_MS = 15000;
/** A just-created or just-joined channel may not be in the read model yet. */
const NEW_CHANNEL_GRACE_MS = 20000;
const TYPING_SEND_EVERY_MS = 2000;
const TYPING_SHOWN_MS = 4000;
/** How long a WebSocket `send` waits for its ack before the HTTP retry. */
const ACK_TIMEOUT_MS = 8000;

const state = {
  session: null, // { token, userId, username, exp }
  channels: new Map(), // id → { id, name, kind, role, unread, lastSeq, readSent, addedAt, subscribed }
  names: new Map(), // user id → shown name
  online: new Map(), // channel id → Set of user ids
  open: null, // { id, hasMore, loading, ready, buffered, members, detailAt }
  typing: new Map(), // user id → timer (open channel only)
  typingSentAt: new Map(), // channel id → time
  pendingSends: new Map(), // frame id → { channelId, content, clientMsgId, timer }
  removed: new Map(), // channel id → when I left or was removed (the read model may lag)
  frameCounter: 0,
  refreshTimer: null,
  expiryTimer: null,
  readTimer: null,
};

const api = createApi(() => state.session?.token ?? null, () => endSession('token_expired'));
const socket = new ChatSocket({
  url: () => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    // The one place the token is in a URL: browsers cannot set headers on a WebSocket.
    return `${scheme}://${location.host}/ws?access_token=${encodeURIComponent(state.session.token)}`;
  },
  onFrame: (frame) => handleFrame(frame),
  onState: (s) => showConnection(s),
  onSessionEnd: (code) => endSession(code),
});
const log = new MessageLog($('messages'), {
  nameOf: (id) => nameOf(id),
  myId: () => state.session?.userId,
  onEdit: (message, content) => attempt(() => api.edit(state.open.id, message.message_id, content)),
  onDelete: (message) =>
    attempt(async () => {
      await api.remove(state.open.id, message.message_id);
      log.deleted(message.seq);
    }),
});

/** Runs `action`; resolves to null on success, else the refusal in words. */
async function attempt(action) {
  try {
    await action();
    return null;
  } catch (err) {
    return describe(err);
  }
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function nameOf(userId) {
  if (userId === state.session?.userId) return state.session.username;
  return state.names.get(userId) ?? `user ${String(userId).slice(0, 8)}`;
}

// ---------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------

async function signIn(username, password, register) {
  const error = $('auth-error');
  error.textContent = '';
  if (!/^[A-Za-z0-9_.-]{3,32}$/.test(username)) {
    error.textContent = 'A username is 3 to 32 letters, digits, _, . or -.';
    return;
  }
  if (password.length < 8) {
    error.textContent = 'A password has at least 8 characters.';
    return;
  }
  for (const button of document.querySelectorAll('#auth-form button')) button.disabled = true;
  try {
    if (register) await api.register(username, password);
    const token = await api.token(username, password);
    const session = sessionFromToken(token.access_token, username);
    if (!session) throw new Error('the server answered with a token this page cannot read');
    saveSession(session);
    $('password').value = '';
    startSession(session);
  } catch (err) {
    error.textContent = describe(err);
  } finally {
    for (const button of document.querySelectorAll('#auth-form button')) button.disabled = false;
  }
}

function startSession(session) {
  // Read before showNoChannel() forgets it.
  const remembered = rememberedOpen();
  state.session = session;
  $('auth-screen').hidden = true;
  $('main-screen').hidden = false;
  $('whoami').hidden = false;
  $('connection').hidden = false;
  $('my-name').textContent = session.username;
  $('my-id').textContent = session.userId;
  clearTimeout(state.expiryTimer);
  const left = session.exp * 1000 - Date.now();
  state.expiryTimer = setTimeout(() => endSession('token_expired'), Math.max(0, Math.min(left, 2 ** 31 - 1)));
  showNoChannel();
  socket.start();
  refresh().then(() => {
    if (remembered && state.channels.has(remembered)) openChannel(remembered);
  });
  clearInterval(state.refreshTimer);
  state.refreshTimer = setInterval(refresh, REFRESH_MS);
}

/** Back to the login form; `code` says why when it was not the user's choice. */
function endSession(code) {
  if (!state.session) return;
  socket.stop();
  clearSession();
  clearInterval(state.refreshTimer);
  clearTimeout(state.expiryTimer);
  for (const pending of state.pendingSends.values()) clearTimeout(pending.timer);
  Object.assign(state, {
    session: null,
    open: null,
    channels: new Map(),
    names: new Map(),
    online: new Map(),
    pendingSends: new Map(),
    removed: new Map(),
  });
  log.clear();
  $('my-channels').replaceChildren();
  $('directory-list').replaceChildren();
  $('main-screen').hidden = true;
  $('whoami').hidden = true;
  $('connection').hidden = true;
  $('auth-screen').hidden = false;
  $('auth-error').textContent = code ? describe({ code }) : '';
  $('username').focus();
}

function showConnection(s) {
  const el = $('connection');
  el.textContent = s === 'connected' ? 'connected' : 'reconnecting…';
  el.classList.toggle('up', s === 'connected');
  if (s !== 'connected') {
    for (const ch of state.channels.values()) ch.subscribed = false;
  }
}

// ---------------------------------------------------------------------------
// My channels and the directory
// ---------------------------------------------------------------------------

async function refresh() {
  await Promise.all([loadMyChannels(), loadDirectory()]);
}

async function loadMyChannels() {
  let answer;
  try {
    answer = await api.myChannels();
  } catch (err) {
    if (err.status !== 401) $('channels-error').textContent = describe(err);
    return;
  }
  $('channels-error').textContent = '';
  const seen = new Set();
  for (const row of answer.channels) {
    seen.add(row.channel_id);
    const known = state.channels.get(row.channel_id);
    const removedAt = state.removed.get(row.channel_id);
    if (!known && removedAt !== undefined && Date.now() - removedAt < NEW_CHANNEL_GRACE_MS) continue;
    state.removed.delete(row.channel_id);
    if (known) {
      Object.assign(known, { name: row.name, kind: row.kind, role: row.role });
      if (state.open?.id !== row.channel_id) {
        known.unread = row.unread_count;
        known.lastSeq = Math.max(known.lastSeq ?? 0, row.last_seq);
      }
    } else {
      addChannel({
        id: row.channel_id,
        name: row.name,
        kind: row.kind,
        role: row.role,
        unread: row.unread_count,
        lastSeq: row.last_seq,
      });
    }
  }
  // Gone from the list for longer than the projection can lag: removed while we were away.
  for (const ch of [...state.channels.values()]) {
    if (!seen.has(ch.id) && Date.now() - ch.addedAt > NEW_CHANNEL_GRACE_MS) dropChannel(ch.id, null);
  }
  renderChannels();
}

function addChannel(fields) {
  state.removed.delete(fields.id);
  const ch = { unread: 0, lastSeq: null, readSent: 0, subscribed: false, addedAt: Date.now(), ...fields };
  state.channels.set(ch.id, ch);
  subscribe(ch);
  return ch;
}

function dropChannel(id, notice) {
  const ch = state.channels.get(id);
  if (!ch) return;
  state.channels.delete(id);
  state.removed.set(id, Date.now());
  state.online.delete(id);
  socket.send({ type: 'unsubscribe', channel_id: id });
  if (state.open?.id === id) showNoChannel();
  if (notice) $('channels-notice').textContent = notice(ch.name);
  renderChannels();
  loadDirectory();
}

function subscribe(ch) {
  if (!socket.connected || ch.subscribed) return;
  const frame = { type: 'subscribe', channel_id: ch.id };
  // The open channel resumes from the top of what it holds without a hole
  // (history is gap-free, so a hole means a message still on its way).
  const seen = state.open?.id === ch.id && log.size > 0 ? log.contiguousTop() : ch.lastSeq;
  if (seen !== null && seen !== undefined) frame.after_seq = seen;
  ch.subscribed = socket.send(frame);
}

function renderChannels() {
  const list = $('my-channels');
  const channels = [...state.channels.values()].sort((a, b) => a.name.localeCompare(b.name));
  list.replaceChildren(
    ...channels.map((ch) => {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = ch.kind === 'private' ? `${ch.name} (private)` : ch.name;
      const badge = document.createElement('span');
      badge.className = ch.unread > 0 ? 'badge unread' : 'badge';
      badge.textContent = ch.unread >= 1000 ? '999+' : String(ch.unread);
      const hidden = document.createElement('span');
      hidden.className = 'sr-only';
      hidden.textContent = ' unread';
      badge.append(hidden);
      button.append(name, badge);
      if (state.open?.id === ch.id) button.setAttribute('aria-current', 'true');
      button.addEventListener('click', () => openChannel(ch.id));
      item.append(button);
      return item;
    }),
  );
  $('no-channels').hidden = channels.length > 0;
}

let directoryGeneration = 0;
async function loadDirectory() {
  const generation = ++directoryGeneration;
  let answer;
  try {
    answer = await api.directory($('directory-q').value.trim());
  } catch (err) {
    if (generation === directoryGeneration && err.status !== 401) $('directory-error').textContent = describe(err);
    return;
  }
  if (generation !== directoryGeneration) return; // a newer search answered first
  $('directory-error').textContent = '';
  $('directory-list').replaceChildren(
    ...answer.channels.map((entry) => {
      const item = document.createElement('li');
      const label = document.createElement('span');
      label.className = 'name';
      label.textContent = entry.name;
      const count = document.createElement('span');
      count.className = 'count';
      count.textContent = entry.member_count === 1 ? '1 member' : `${entry.member_count} members`;
      label.append(count);
      const member = entry.is_member || state.channels.has(entry.channel_id);
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = member ? 'Open' : 'Join';
      button.addEventListener('click', () =>
        member ? openChannel(entry.channel_id) : joinChannel(entry, button),
      );
      item.append(label, button);
      return item;
    }),
  );
  $('directory-empty').hidden = answer.channels.length > 0;
}

async function joinChannel(entry, button) {
  button.disabled = true;
  $('directory-error').textContent = '';
  try {
    await api.join(entry.channel_id);
  } catch (err) {
    button.disabled = false;
    $('directory-error').textContent = describe(err);
    return;
  }
  if (!state.channels.has(entry.channel_id)) {
    addChannel({ id: entry.channel_id, name: entry.name, kind: 'public', role: 'member' });
  }
  renderChannels();
  openChannel(entry.channel_id);
  setTimeout(loadDirectory, 1500);
}

async function createChannel(event) {
  event.preventDefault();
  const error = $('new-channel-error');
  const name = $('channel-name').value.trim();
  error.textContent = '';
  if (!name) {
    error.textContent = 'Give the channel a name.';
    return;
  }
  const kind = $('channel-private').checked ? 'private' : 'public';
  let createdId;
  try {
    const created = await api.createChannel(name, kind);
    createdId = created.channel_id;
    addChannel({ id: createdId, name, kind, role: 'owner', lastSeq: 0 });
  } catch (err) {
    error.textContent = describe(err);
    return;
  }
  $('channel-name').value = '';
  $('channel-private').checked = false;
  toggleNewChannel(false);
  renderChannels();
  openChannel(createdId);
  loadDirectory();
  // Once the projection has it, the new channel shows in the directory too.
  setTimeout(loadDirectory, 1500);
}

function toggleNewChannel(show) {
  $('new-channel-form').hidden = !show;
  $('new-channel').setAttribute('aria-expanded', String(show));
  if (show) $('channel-name').focus();
}

// ---------------------------------------------------------------------------
// The open channel
// ---------------------------------------------------------------------------

function showNoChannel() {
  state.open = null;
  rememberOpen(null);
  log.clear();
  $('channel-view').hidden = true;
  $('main-screen').classList.add('no-channel');
  $('main-screen').classList.remove('channel-open');
  renderChannels();
}

/** Retries `load` while the read model has not caught up with a new channel. */
async function withGrace(ch, load) {
  for (let tries = 0; ; tries += 1) {
    try {
      return await load();
    } catch (err) {
      const fresh = Date.now() - ch.addedAt < NEW_CHANNEL_GRACE_MS;
      if (err.code !== 'channel_not_found' || !fresh || tries >= 20) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

async function openChannel(id) {
  const ch = state.channels.get(id);
  if (!ch) return;
  const open = { id, hasMore: false, loading: true, ready: false, buffered: [], members: [], detailAt: 0 };
  state.open = open;
  rememberOpen(id);
  clearTyping();
  log.clear();
  $('channel-error').textContent = '';
  $('channel-title').textContent = ch.name;
  $('channel-view').hidden = false;
  $('main-screen').classList.remove('no-channel');
  $('main-screen').classList.add('channel-open');
  $('older').hidden = true;
  renderChannels();
  renderOnline();
  renderMembers();
  loadDetail(ch, open);
  try {
    const page = await withGrace(ch, () => api.history(id));
    if (state.open !== open) return;
    log.upsert(page.messages.slice().reverse());
    open.hasMore = page.has_more;
  } catch (err) {
    if (state.open === open) $('channel-error').textContent = describe(err);
  }
  if (state.open !== open) return;
  open.loading = false;
  open.ready = true;
  for (const frame of open.buffered) handleFrame(frame);
  open.buffered = [];
  $('older').hidden = !open.hasMore;
  log.scrollToBottom();
  ch.unread = 0;
  renderChannels();
  scheduleRead();
  $('message').focus();
}

async function loadDetail(ch, open) {
  open.detailAt = Date.now();
  try {
    const detail = await withGrace(ch, () => api.channel(ch.id));
    if (state.open !== open) return;
    open.members = detail.members;
    for (const m of detail.members) {
      if (m.username) state.names.set(m.user_id, m.display_name || m.username);
      if (m.user_id === state.session.userId) ch.role = m.role;
    }
    log.renameAll();
    renderOnline();
    renderTyping();
    renderMembers();
  } catch (err) {
    if (state.open === open) $('channel-error').textContent = describe(err);
  }
}

/**
 * Learns the names of people not seen yet (a sender, someone online or
 * typing) from the channel's member list, at most once a second; a member
 * who just joined may not be in the read model yet, so it asks again later.
 */
function learnName(userId) {
  const open = state.open;
  if (!open || state.names.has(userId) || userId === state.session.userId) return;
  if (open.namesTimer) return;
  const wait = Math.max(0, 1000 - (Date.now() - open.detailAt));
  open.namesTimer = setTimeout(async () => {
    open.namesTimer = null;
    const ch = state.channels.get(open.id);
    if (state.open !== open || !ch) return;
    await loadDetail(ch, open);
    open.nameTries = (open.nameTries ?? 0) + 1;
    if (!state.names.has(userId) && open.nameTries < 20) learnName(userId);
  }, wait);
}

async function loadOlder() {
  const open = state.open;
  if (!open || !open.ready || open.loading || !open.hasMore || log.minSeq === null) return;
  open.loading = true;
  try {
    const page = await api.history(open.id, { before: log.minSeq });
    if (state.open !== open) return;
    log.upsert(page.messages.slice().reverse());
    open.hasMore = page.has_more;
  } catch (err) {
    if (state.open === open) $('channel-error').textContent = describe(err);
  } finally {
    open.loading = false;
    if (state.open === open) $('older').hidden = !open.hasMore;
  }
}

/** After an outage, the newest page again: edits and deletes we missed. */
async function refreshNewest(open) {
  try {
    const page = await api.history(open.id);
    if (state.open === open) log.upsert(page.messages.slice().reverse());
  } catch {
    /* the live stream goes on; the next reconnect tries again */
  }
}

function renderOnline() {
  const el = $('online');
  const open = state.open;
  const users = open ? [...(state.online.get(open.id) ?? [])] : [];
  el.textContent = users.length ? `Online: ${users.map(nameOf).sort().join(', ')}` : 'Nobody else online';
}

function renderMembers() {
  const list = $('members');
  const open = state.open;
  const ch = open && state.channels.get(open.id);
  if (!ch) {
    list.replaceChildren();
    return;
  }
  const mayKick = ch.role === 'owner' || ch.role === 'admin';
  list.replaceChildren(
    ...open.members.map((m) => {
      const item = document.createElement('li');
      const who = document.createElement('span');
      who.textContent = `${m.display_name || m.username || nameOf(m.user_id)} (${m.role})`;
      item.append(who);
      if (mayKick && m.user_id !== state.session.userId && m.role !== 'owner') {
        const kick = document.createElement('button');
        kick.type = 'button';
        kick.textContent = 'Kick';
        kick.setAttribute('aria-label', `Kick ${m.display_name || m.username || m.user_id}`);
        kick.addEventListener('click', async () => {
          const failure = await attempt(() => api.removeMember(ch.id, m.user_id));
          $('channel-error').textContent = failure ?? '';
          if (!failure) {
            open.members = open.members.filter((x) => x.user_id !== m.user_id);
            renderMembers();
          }
        });
        item.append(kick);
      }
      return item;
    }),
  );
  $('leave').hidden = ch.role === 'owner';
}

async function invite(event) {
  event.preventDefault();
  const open = state.open;
  const userId = $('invite-user').value.trim();
  if (!open) return;
  if (!UUID.test(userId)) {
    $('channel-error').textContent = 'That is not a user ID (it looks like 8-4-4-4-12 hexadecimal digits).';
    return;
  }
  const failure = await attempt(() => api.invite(open.id, userId));
  $('channel-error').textContent = failure ?? '';
  if (!failure) {
    $('invite-user').value = '';
    const ch = state.channels.get(open.id);
    if (ch) setTimeout(() => state.open === open && loadDetail(ch, open), 500);
  }
}

async function leave() {
  const open = state.open;
  if (!open) return;
  const failure = await attempt(() => api.removeMember(open.id, state.session.userId));
  if (failure) {
    $('channel-error').textContent = failure;
    return;
  }
  dropChannel(open.id, null);
}

// ---------------------------------------------------------------------------
// Sending, typing, reading
// ---------------------------------------------------------------------------

async function send(event) {
  event.preventDefault();
  const open = state.open;
  const input = $('message');
  const content = input.value.trim();
  const error = $('channel-error');
  error.textContent = '';
  if (!open) return;
  if (!content) {
    error.textContent = 'Type a message first.';
    return;
  }
  input.value = '';
  const clientMsgId = randomId();
  const id = `send-${++state.frameCounter}`;
  const pending = { channelId: open.id, content, clientMsgId, timer: null };
  if (socket.send({ type: 'send', id, channel_id: open.id, content, client_msg_id: clientMsgId })) {
    // No ack in time (the socket died under it): the same client_msg_id over
    // HTTP answers the first result, so the message is never sent twice.
    pending.timer = setTimeout(() => {
      state.pendingSends.delete(id);
      sendOverHttp(pending);
    }, ACK_TIMEOUT_MS);
    state.pendingSends.set(id, pending);
  } else {
    sendOverHttp(pending);
  }
}

async function sendOverHttp(pending) {
  try {
    const answer = await api.send(pending.channelId, pending.content, pending.clientMsgId);
    accepted(pending, answer.message_id, answer.seq);
  } catch (err) {
    refused(pending, describe(err));
  }
}

function accepted(pending, messageId, seq) {
  // The channel's own resume point moves only with frames: an ack may
  // overtake someone else's message that is still on its way.
  if (state.open?.id === pending.channelId && state.open.ready && !log.has(seq)) {
    log.upsert([{
      seq,
      message_id: messageId,
      sender_id: state.session.userId,
      content: pending.content,
      created_at: new Date().toISOString(),
      edited_at: null,
      deleted: false,
    }]);
    log.scrollToBottom();
  }
}

function refused(pending, text) {
  if (state.open?.id !== pending.channelId) return;
  $('channel-error').textContent = text;
  const input = $('message');
  if (!input.value) input.value = pending.content;
}

function typed() {
  const open = state.open;
  if (!open || !$('message').value) return;
  const last = state.typingSentAt.get(open.id) ?? 0;
  if (Date.now() - last < TYPING_SEND_EVERY_MS) return;
  if (socket.send({ type: 'typing', channel_id: open.id })) state.typingSentAt.set(open.id, Date.now());
}

function showTyping(userId) {
  clearTimeout(state.typing.get(userId));
  state.typing.set(userId, setTimeout(() => {
    state.typing.delete(userId);
    renderTyping();
  }, TYPING_SHOWN_MS));
  renderTyping();
}

function clearTyping() {
  for (const timer of state.typing.values()) clearTimeout(timer);
  state.typing.clear();
  renderTyping();
}

function renderTyping() {
  const names = [...state.typing.keys()].map(nameOf).sort();
  $('typing').textContent =
    names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.join(', ')} are typing…`;
}

/** Moves my read pointer to the newest message once I have seen it. */
function scheduleRead() {
  clearTimeout(state.readTimer);
  state.readTimer = setTimeout(() => {
    const open = state.open;
    if (!open || !open.ready || document.visibilityState === 'hidden' || !log.atBottom()) return;
    const ch = state.channels.get(open.id);
    const seq = log.maxSeq;
    if (!ch || seq <= ch.readSent) return;
    if (!socket.send({ type: 'read', channel_id: ch.id, seq })) {
      api.markRead(ch.id, seq).catch(() => {});
    }
    ch.readSent = seq;
    ch.unread = 0;
    renderChannels();
  }, 300);
}

// ---------------------------------------------------------------------------
// Server frames
// ---------------------------------------------------------------------------

function handleFrame(frame) {
  const open = state.open;
  if (open && !open.ready && frame.channel_id === open.id && frame.type.startsWith('message')) {
    open.buffered.push(frame); // applied once the first page is in
    return;
  }
  switch (frame.type) {
    case 'welcome':
      for (const ch of state.channels.values()) {
        ch.subscribed = false;
        subscribe(ch);
      }
      break;
    case 'subscribed': {
      const ch = state.channels.get(frame.channel_id);
      if (!ch) break;
      state.online.set(ch.id, new Set(frame.online_users.filter((u) => u !== state.session.userId)));
      const resumed = ch.lastSeq !== null;
      if (ch.lastSeq === null || !frame.recovered) ch.lastSeq = frame.last_seq;
      if (open?.id === ch.id) {
        renderOnline();
        for (const user of state.online.get(ch.id)) learnName(user);
        if (resumed && open.ready) {
          if (frame.recovered) refreshNewest(open);
          else openChannel(ch.id); // too far behind to replay: read it again
        }
      }
      break;
    }
    case 'message': {
      const ch = state.channels.get(frame.channel_id);
      if (!ch) break;
      const isNew = frame.seq > (ch.lastSeq ?? 0);
      if (open?.id === ch.id) {
        if (!log.has(frame.seq)) {
          log.upsert([{
            seq: frame.seq,
            message_id: frame.message_id,
            sender_id: frame.sender_id,
            content: frame.content,
            created_at: frame.created_at,
            edited_at: null,
            deleted: false,
          }]);
          learnName(frame.sender_id);
        }
        if (state.typing.has(frame.sender_id)) {
          clearTimeout(state.typing.get(frame.sender_id));
          state.typing.delete(frame.sender_id);
          renderTyping();
        }
        scheduleRead();
      } else if (isNew && frame.sender_id !== state.session.userId) {
        ch.unread += 1;
        renderChannels();
      }
      if (isNew) ch.lastSeq = frame.seq;
      break;
    }
    case 'message_edited':
      if (open?.id === frame.channel_id) log.edited(frame.seq, frame.content, frame.edited_at);
      break;
    case 'message_deleted':
      if (open?.id === frame.channel_id) log.deleted(frame.seq);
      break;
    case 'ack': {
      const pending = state.pendingSends.get(frame.id);
      if (!pending) break;
      clearTimeout(pending.timer);
      state.pendingSends.delete(frame.id);
      accepted(pending, frame.message_id, frame.seq);
      break;
    }
    case 'presence': {
      if (frame.user_id === state.session.userId) break;
      const users = state.online.get(frame.channel_id) ?? new Set();
      if (frame.online) users.add(frame.user_id); else users.delete(frame.user_id);
      state.online.set(frame.channel_id, users);
      if (open?.id === frame.channel_id) {
        renderOnline();
        learnName(frame.user_id);
      }
      break;
    }
    case 'typing':
      if (open?.id === frame.channel_id && frame.user_id !== state.session.userId) {
        showTyping(frame.user_id);
        learnName(frame.user_id);
      }
      break;
    case 'unsubscribed': {
      const reasons = { left: 'You left', kicked: 'You were removed from', banned: 'You were banned from' };
      if (frame.reason in reasons) {
        dropChannel(frame.channel_id, (name) => `${reasons[frame.reason]} ${name}.`);
      }
      break;
    }
    case 'error': {
      const pending = frame.id ? state.pendingSends.get(frame.id) : null;
      if (pending) {
        clearTimeout(pending.timer);
        state.pendingSends.delete(frame.id);
        refused(pending, describe(frame));
      } else if (frame.channel_id && open?.id === frame.channel_id) {
        $('channel-error').textContent = describe(frame);
      } else if (frame.code !== 'rate_limited') {
        $('channels-notice').textContent = describe(frame);
      }
      break;
    }
    default:
      break;
  }
}

// ---------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------

function wire() {
  $('auth-form').addEventListener('submit', (event) => {
    event.preventDefault();
    signIn($('username').value.trim(), $('password').value, true);
  });
  $('login').addEventListener('click', () => signIn($('username').value.trim(), $('password').value, false));
  $('password').addEventListener('keydown', (event) => {
    // Enter in the password field logs in; "Sign up" is a click away.
    if (event.key === 'Enter') {
      event.preventDefault();
      signIn($('username').value.trim(), $('password').value, false);
    }
  });
  $('logout').addEventListener('click', () => endSession(null));
  $('new-channel').addEventListener('click', () => toggleNewChannel($('new-channel-form').hidden));
  $('new-channel-form').addEventListener('submit', createChannel);
  let searchTimer = null;
  $('directory-q').addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(loadDirectory, 250);
  });
  $('directory-form').addEventListener('submit', (event) => {
    event.preventDefault();
    loadDirectory();
  });
  $('composer').addEventListener('submit', send);
  $('message').addEventListener('input', typed);
  $('messages').addEventListener('scroll', () => {
    if ($('messages').scrollTop < 150) loadOlder();
    scheduleRead();
  });
  $('older').addEventListener('click', loadOlder);
  $('invite-form').addEventListener('submit', invite);
  $('leave').addEventListener('click', leave);
  $('back').addEventListener('click', showNoChannel);
  document.addEventListener('visibilitychange', scheduleRead);
  window.addEventListener('focus', () => state.session && refresh());

  const session = loadSession();
  if (session) startSession(session);
  else $('username').focus();
}

wire();
