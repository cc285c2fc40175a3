// The HTTP half of the public contract (DESIGN.md §6): one function per
// endpoint the page uses. Errors come back as ApiError carrying the server's
// `error.code`, so the page can say what went wrong in words of its own.

/** A refused or failed request: HTTP status (0: no answer), code, message. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const seg = encodeURIComponent;

/**
 * A client sending `tokenSource()` as the bearer token; `onUnauthorized(err)`
 * runs when a request that carried a token answers 401 (expired or revoked).
 */
export function createApi(tokenSource, onUnauthorized) {
  async function request(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const token = tokenSource();
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch {
      throw new ApiError(0, 'network', 'the server cannot be reached');
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!response.ok) {
      const err = new ApiError(
        response.status,
        data?.error?.code ?? `http_${response.status}`,
        data?.error?.message ?? response.statusText,
        response.headers.get('Retry-After'),
      );
      if (response.status === 401 && token) onUnauthorized(err);
      throw err;
    }
    return data;
  }

  const channel = (id) => `/api/channels/${seg(id)}`;
  return {
    register: (username, password) => request('POST', '/api/users', { username, password }),
    token: (username, password) => request('POST', '/api/auth/token', { username, password }),
    myChannels: () => request('GET', '/api/channels'),
    channel: (id) => request('GET', channel(id)),
    history(id, { before = null, limit = 50 } = {}) {
      const query = new URLSearchParams({ limit: String(limit) });
      if (before !== null) query.set('before', String(before));
      return request('GET', `${channel(id)}/messages?${query}`);
    },
    directory(q, limit = 50) {
      const query = new URLSearchParams({ q, limit: String(limit) });
      return request('GET', `/api/channels/public?${query}`);
    },
    createChannel: (name, kind) => request('POST', '/api/channels', { name, kind }),
    join: (id) => request('POST', `${channel(id)}/members`, {}),
    invite: (id, userId) => request('POST', `${channel(id)}/members`, { user_id: userId }),
    removeMember: (id, userId) => request('DELETE', `${channel(id)}/members/${seg(userId)}`),
    send: (id, content, clientMsgId) =>
      request('POST', `${channel(id)}/messages`, { content, type: 'text', client_msg_id: clientMsgId }),
    edit: (id, messageId, content) =>
      request('PATCH', `${channel(id)}/messages/${seg(messageId)}`, { content }),
    remove: (id, messageId) => request('DELETE', `${channel(id)}/messages/${seg(messageId)}`),
    markRead: (id, seq) => request('POST', `${channel(id)}/read`, { seq }),
  };
}
