// Clear words for every refusal the server can answer (the `error.code`s of
// DESIGN.md §6 and §7); an unknown code falls back to the server's message.

const TEXT = {
  network: 'The server cannot be reached. Check your connection and try again.',
  username_taken: 'That username is taken. Choose another one, or log in.',
  invalid_credentials: 'Wrong username or password.',
  validation_failed: null, // the server's message names the field and the rule
  invalid_body: null,
  rate_limited: 'Too many attempts. Wait a moment and try again.',
  unavailable: 'The service is busy or restarting. Try again in a moment.',
  hashing_unavailable: 'The server is busy. Try again in a moment.',
  missing_token: 'Please log in.',
  invalid_token: 'Your session is no longer valid. Please log in again.',
  token_expired: 'Your session has expired. Please log in again.',
  channel_not_found: 'That channel does not exist (or is not visible yet).',
  message_not_found: 'That message no longer exists.',
  user_not_found: 'No user has that ID.',
  channel_exists: 'A channel with that name already exists.',
  not_a_member: 'You are not a member of this channel.',
  target_not_a_member: 'That user is not a member of this channel.',
  banned: 'You are banned from this channel.',
  target_banned: 'That user is banned from this channel.',
  private_channel: 'This channel is private: only an invitation lets you in.',
  insufficient_role: 'Your role in this channel does not allow that.',
  outranked: 'You cannot do that to someone whose role is equal to or above yours.',
  not_sender: 'Only the sender can change this message.',
  channel_archived: 'This channel is archived: nothing can be changed in it.',
  channel_full: 'This channel is full.',
  owner_cannot_leave: 'The owner cannot leave the channel.',
  message_deleted: 'That message was deleted.',
  banned_word: 'The message contains a word that is not allowed.',
  seq_out_of_range: 'That message is not in this channel yet.',
  version_conflict: 'Someone changed this at the same time. Try again.',
  contention: 'The channel is very busy. Try again.',
  payload_too_large: 'That is too long.',
  too_many_subscriptions: 'You follow too many channels at once on this connection.',
  not_subscribed: 'The connection is not following this channel yet. Try again.',
  invalid_query: null,
  invalid_frame: null,
};

/** A sentence for `err` (an ApiError or an `error` frame: {code, message}). */
export function describe(err) {
  const text = TEXT[err?.code];
  if (text) {
    if (err.code === 'rate_limited' && err.retryAfter) {
      return `Too many attempts. Try again in ${err.retryAfter} s.`;
    }
    return text;
  }
  const message = err?.message ? String(err.message) : 'Something went wrong.';
  return message.charAt(0).toUpperCase() + message.slice(1) + (/[.!?]$/.test(message) ? '' : '.');
}
