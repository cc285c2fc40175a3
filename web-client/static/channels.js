// My channels (with unread counts, subscribed on the socket) and the public
// directory with search, Join and New channel.

import { openChannel, showNoChannel } from './channel-view.js';
import { $, NEW_CHANNEL_GRACE_MS, api, log, socket, state } from './context.js';
import { describe } from './errors.js';

export async function refresh() {
  await Promise.all([loadMyChannels(), loadDirectory()]);
}

export async function loadMyChannels() {
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

export function addChannel(fields) {
  state.removed.delete(fields.id);
  const ch = { unread: 0, lastSeq: null, readSent: 0, subscribed: false, addedAt: Date.now(), ...fields };
  state.channels.set(ch.id, ch);
  subscribe(ch);
  return ch;
}

export function dropChannel(id, notice) {
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

export function subscribe(ch) {
  if (!socket.connected || ch.subscribed) return;
  const frame = { type: 'subscribe', channel_id: ch.id };
  // The open channel resumes from the top of what it holds without a hole
  // (history is gap-free, so a hole means a message still on its way).
  const seen = state.open?.id === ch.id && log.size > 0 ? log.contiguousTop() : ch.lastSeq;
  if (seen !== null && seen !== undefined) frame.after_seq = seen;
  ch.subscribed = socket.send(frame);
}

export function renderChannels() {
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
export async function loadDirectory() {
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

export async function joinChannel(entry, button) {
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

export async function createChannel(event) {
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

export function toggleNewChannel(show) {
  $('new-channel-form').hidden = !show;
  $('new-channel').setAttribute('aria-expanded', String(show));
  if (show) $('channel-name').focus();
}
