// The open channel: its first page and older ones as I scroll up, members
// (invite, kick, leave) and who is online.

import { dropChannel, renderChannels } from './channels.js';
import { clearTyping, renderTyping, scheduleRead } from './composer.js';
import { $, NEW_CHANNEL_GRACE_MS, UUID, api, attempt, log, nameOf, state } from './context.js';
import { describe } from './errors.js';
import { handleFrame } from './frames.js';
import { rememberOpen } from './session.js';

export function showNoChannel() {
  state.open = null;
  rememberOpen(null);
  log.clear();
  $('channel-view').hidden = true;
  $('main-screen').classList.add('no-channel');
  $('main-screen').classList.remove('channel-open');
  renderChannels();
}

/** Retries `load` while the read model has not caught up with a new channel. */
export async function withGrace(ch, load) {
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

export async function openChannel(id) {
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

export async function loadDetail(ch, open) {
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
export function learnName(userId) {
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

export async function loadOlder() {
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
export async function refreshNewest(open) {
  try {
    const page = await api.history(open.id);
    if (state.open === open) log.upsert(page.messages.slice().reverse());
  } catch {
    /* the live stream goes on; the next reconnect tries again */
  }
}

export function renderOnline() {
  const el = $('online');
  const open = state.open;
  const users = open ? [...(state.online.get(open.id) ?? [])] : [];
  el.textContent = users.length ? `Online: ${users.map(nameOf).sort().join(', ')}` : 'Nobody else online';
}

export function renderMembers() {
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

export async function invite(event) {
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

export async function leave() {
  const open = state.open;
  if (!open) return;
  const failure = await attempt(() => api.removeMember(open.id, state.session.userId));
  if (failure) {
    $('channel-error').textContent = failure;
    return;
  }
  dropChannel(open.id, null);
}
