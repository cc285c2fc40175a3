// Sending (over the socket, HTTP when it is down or the ack is late: the
// same client_msg_id never sends twice), typing, and the read pointer.

import { renderChannels } from './channels.js';
import { $, ACK_TIMEOUT_MS, TYPING_SEND_EVERY_MS, TYPING_SHOWN_MS, api, log, nameOf, randomId, socket, state } from './context.js';
import { describe } from './errors.js';

export async function send(event) {
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

export async function sendOverHttp(pending) {
  try {
    const answer = await api.send(pending.channelId, pending.content, pending.clientMsgId);
    accepted(pending, answer.message_id, answer.seq);
  } catch (err) {
    refused(pending, describe(err));
  }
}

export function accepted(pending, messageId, seq) {
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

export function refused(pending, text) {
  if (state.open?.id !== pending.channelId) return;
  $('channel-error').textContent = text;
  const input = $('message');
  if (!input.value) input.value = pending.content;
}

export function typed() {
  const open = state.open;
  if (!open || !$('message').value) return;
  const last = state.typingSentAt.get(open.id) ?? 0;
  if (Date.now() - last < TYPING_SEND_EVERY_MS) return;
  if (socket.send({ type: 'typing', channel_id: open.id })) state.typingSentAt.set(open.id, Date.now());
}

export function showTyping(userId) {
  clearTimeout(state.typing.get(userId));
  state.typing.set(userId, setTimeout(() => {
    state.typing.delete(userId);
    renderTyping();
  }, TYPING_SHOWN_MS));
  renderTyping();
}

export function clearTyping() {
  for (const timer of state.typing.values()) clearTimeout(timer);
  state.typing.clear();
  renderTyping();
}

export function renderTyping() {
  const names = [...state.typing.keys()].map(nameOf).sort();
  $('typing').textContent =
    names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.join(', ')} are typing…`;
}

/** Moves my read pointer to the newest message once I have seen it. */
export function scheduleRead() {
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
