// What every part of the page shares: the state, the HTTP client, the
// socket, the message log, constants and small helpers. Their callbacks call
// into app.js and frames.js only when they fire, so the import cycle with
// those modules is harmless.

import { createApi } from './api.js';
import { endSession, showConnection } from './app.js';
import { describe } from './errors.js';
import { handleFrame } from './frames.js';
import { MessageLog } from './messages.js';
import { ChatSocket } from './socket.js';

export const $ = (id) => document.getElementById(id);
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** How often my channels and the directory are refreshed (invitations, new channels). */
export const REFRESH_MS = 15000;
/** A just-created or just-joined channel may not be in the read model yet. */
export const NEW_CHANNEL_GRACE_MS = 20000;
export const TYPING_SEND_EVERY_MS = 2000;
export const TYPING_SHOWN_MS = 4000;
/** How long a WebSocket `send` waits for its ack before the HTTP retry. */
export const ACK_TIMEOUT_MS = 8000;

export const state = {
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

export const api = createApi(() => state.session?.token ?? null, () => endSession('token_expired'));
export const socket = new ChatSocket({
  url: () => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    // The one place the token is in a URL: browsers cannot set headers on a WebSocket.
    return `${scheme}://${location.host}/ws?access_token=${encodeURIComponent(state.session.token)}`;
  },
  onFrame: (frame) => handleFrame(frame),
  onState: (s) => showConnection(s),
  onSessionEnd: (code) => endSession(code),
});
export const log = new MessageLog($('messages'), {
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
export async function attempt(action) {
  try {
    await action();
    return null;
  } catch (err) {
    return describe(err);
  }
}

export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function nameOf(userId) {
  if (userId === state.session?.userId) return state.session.username;
  return state.names.get(userId) ?? `user ${String(userId).slice(0, 8)}`;
}
