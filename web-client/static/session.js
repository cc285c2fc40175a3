// The signed-in session, kept in localStorage so it survives a reload (and
// nowhere in page URLs). The token's own claims give the user id and expiry.

const KEY = 'chat.session';
const OPEN_KEY = 'chat.open';

function decodeClaims(token) {
  const part = String(token).split('.')[1];
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/** A session for `token` (null if its claims cannot be read). */
export function sessionFromToken(token, username) {
  const claims = decodeClaims(token);
  if (!claims || typeof claims.sub !== 'string' || typeof claims.exp !== 'number') return null;
  return { token, userId: claims.sub, username: claims.name || username, exp: claims.exp };
}

/** The stored session, if there is one that has not expired. */
export function loadSession() {
  let stored;
  try {
    stored = JSON.parse(localStorage.getItem(KEY) ?? 'null');
  } catch {
    stored = null;
  }
  if (!stored || typeof stored.token !== 'string') return null;
  const session = sessionFromToken(stored.token, stored.username);
  if (!session || session.exp * 1000 <= Date.now() + 5000) {
    clearSession();
    return null;
  }
  return session;
}

export function saveSession(session) {
  localStorage.setItem(KEY, JSON.stringify({ token: session.token, username: session.username }));
}

export function clearSession() {
  localStorage.removeItem(KEY);
  sessionStorage.removeItem(OPEN_KEY);
}

/** Which channel was open, so a reload comes back to it. */
export function rememberOpen(channelId) {
  if (channelId) sessionStorage.setItem(OPEN_KEY, channelId);
  else sessionStorage.removeItem(OPEN_KEY);
}

export function rememberedOpen() {
  return sessionStorage.getItem(OPEN_KEY);
}
