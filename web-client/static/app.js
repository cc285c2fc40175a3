// The chat page (DESIGN.md §11): sign up / log in, my channels with unread
// counts, the public directory, one open channel with live messages, typing,
// presence and read pointer, and a socket that resumes every channel by
// `after_seq` after any outage. Uses only the public HTTP and WebSocket API.
// This module holds the session and wires the page; the rest is in
// channels.js, channel-view.js, composer.js and frames.js.

import { invite, leave, loadOlder, openChannel, showNoChannel } from './channel-view.js';
import { createChannel, loadDirectory, refresh, toggleNewChannel } from './channels.js';
import { scheduleRead, send, typed } from './composer.js';
import { $, REFRESH_MS, api, log, socket, state } from './context.js';
import { describe } from './errors.js';
import { clearSession, loadSession, rememberedOpen, saveSession, sessionFromToken } from './session.js';

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
export function endSession(code) {
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

export function showConnection(s) {
  const el = $('connection');
  el.textContent = s === 'connected' ? 'connected' : 'reconnecting…';
  el.classList.toggle('up', s === 'connected');
  if (s !== 'connected') {
    for (const ch of state.channels.values()) ch.subscribed = false;
  }
}



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
