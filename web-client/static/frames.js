// Every server frame of DESIGN.md §7 and what it changes on the page.

import { learnName, openChannel, refreshNewest, renderOnline } from './channel-view.js';
import { dropChannel, renderChannels, subscribe } from './channels.js';
import { accepted, refused, renderTyping, scheduleRead, showTyping } from './composer.js';
import { $, log, state } from './context.js';
import { describe } from './errors.js';

export function handleFrame(frame) {
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
