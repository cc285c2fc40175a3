// The open channel's messages: one <article> per seq, kept in seq order in
// the document (oldest first, newest at the bottom) whatever order pages and
// live frames arrive in, each seq at most once. Content is set as text only
// (textContent), so a message can never inject markup into the page.

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

export class MessageLog {
  /**
   * `container` is the `role="log"` element; `nameOf(userId)` names a
   * sender; `myId()` is the signed-in user; `onEdit(message, content)` and
   * `onDelete(message)` run the commands and resolve to an error text or null.
   */
  constructor(container, { nameOf, myId, onEdit, onDelete }) {
    this.container = container;
    this.nameOf = nameOf;
    this.myId = myId;
    this.onEdit = onEdit;
    this.onDelete = onDelete;
    this.entries = new Map(); // seq → { message, el }
    this.order = []; // seqs, ascending
  }

  clear() {
    for (const { el } of this.entries.values()) el.remove();
    this.entries.clear();
    this.order = [];
  }

  has(seq) { return this.entries.has(seq); }
  get size() { return this.order.length; }
  get minSeq() { return this.order.length ? this.order[0] : null; }
  get maxSeq() { return this.order.length ? this.order[this.order.length - 1] : 0; }

  /** The highest seq below which nothing is missing (from the oldest held). */
  contiguousTop() {
    let top = this.minSeq ?? 0;
    for (let i = 1; i < this.order.length && this.order[i] === top + 1; i += 1) top = this.order[i];
    return top;
  }

  /** Whether the reader is at (or near) the newest message. */
  atBottom() {
    const c = this.container;
    return c.scrollHeight - c.scrollTop - c.clientHeight < 80;
  }

  scrollToBottom() {
    this.container.scrollTop = this.container.scrollHeight;
  }

  /**
   * Adds or refreshes messages ({seq, message_id, sender_id, content,
   * created_at, edited_at, deleted}). Older ones keep the reader's place;
   * newer ones follow the bottom if the reader was there.
   */
  upsert(messages) {
    const followBottom = this.atBottom();
    const heightBefore = this.container.scrollHeight;
    const topBefore = this.container.scrollTop;
    let addedAbove = false;
    for (const message of messages) {
      const known = this.entries.get(message.seq);
      if (known) {
        known.message = { ...known.message, ...message };
        this.render(known);
        continue;
      }
      const entry = { message, el: element('article') };
      entry.el.dataset.seq = String(message.seq);
      this.render(entry);
      const index = this.insertionIndex(message.seq);
      const next = index < this.order.length ? this.entries.get(this.order[index]).el : null;
      this.container.insertBefore(entry.el, next);
      this.order.splice(index, 0, message.seq);
      this.entries.set(message.seq, entry);
      if (next !== null) addedAbove = true;
    }
    if (followBottom && !addedAbove) {
      this.scrollToBottom();
    } else if (addedAbove) {
      // Keep the message the reader was looking at where it was.
      this.container.scrollTop = topBefore + (this.container.scrollHeight - heightBefore);
    }
  }

  edited(seq, content, editedAt) {
    const entry = this.entries.get(seq);
    if (!entry) return;
    entry.message = { ...entry.message, content, edited_at: editedAt };
    this.render(entry);
  }

  deleted(seq) {
    const entry = this.entries.get(seq);
    if (!entry) return;
    entry.message = { ...entry.message, content: null, deleted: true };
    this.render(entry);
  }

  /** Re-renders every sender name (after names were learned). */
  renameAll() {
    for (const entry of this.entries.values()) {
      const sender = entry.el.querySelector('.sender');
      if (sender) sender.textContent = this.nameOf(entry.message.sender_id);
    }
  }

  insertionIndex(seq) {
    let lo = 0;
    let hi = this.order.length;
    if (hi > 0 && this.order[hi - 1] < seq) return hi; // the common case: newest
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.order[mid] < seq) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  render(entry) {
    const { message, el } = entry;
    const mine = message.sender_id === this.myId();
    el.className = [mine ? 'mine' : '', message.deleted ? 'deleted' : ''].join(' ').trim();
    el.replaceChildren();
    const head = element('header');
    head.append(element('span', 'sender', this.nameOf(message.sender_id)));
    if (message.created_at) {
      const at = new Date(message.created_at);
      const time = element('time', '', timeFormat.format(at));
      time.dateTime = message.created_at;
      time.title = dateFormat.format(at);
      head.append(time);
    }
    if (message.edited_at && !message.deleted) head.append(element('span', 'edited', '(edited)'));
    el.append(head);
    el.append(element('p', 'text', message.deleted ? 'This message was deleted.' : String(message.content ?? '')));
    if (mine && !message.deleted) el.append(this.actions(entry));
  }

  actions(entry) {
    const bar = element('div', 'message-actions');
    const error = element('p', 'error');
    error.setAttribute('role', 'alert');
    const edit = element('button', '', 'Edit');
    edit.type = 'button';
    edit.addEventListener('click', () => this.startEdit(entry));
    const remove = element('button', '', 'Delete');
    remove.type = 'button';
    remove.addEventListener('click', async () => {
      remove.disabled = true;
      const failure = await this.onDelete(entry.message);
      remove.disabled = false;
      error.textContent = failure ?? '';
    });
    bar.append(edit, remove);
    const wrap = element('div');
    wrap.append(bar, error);
    return wrap;
  }

  startEdit(entry) {
    const { el, message } = entry;
    const text = el.querySelector('.text');
    const form = element('form', 'edit-form');
    const input = element('input');
    input.value = message.content ?? '';
    input.maxLength = 4000;
    input.setAttribute('aria-label', 'Edit message');
    const save = element('button', '', 'Save');
    save.type = 'submit';
    const cancel = element('button', 'secondary', 'Cancel');
    cancel.type = 'button';
    const error = element('p', 'error');
    error.setAttribute('role', 'alert');
    form.append(input, save, cancel, error);
    cancel.addEventListener('click', () => this.render(entry));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const content = input.value.trim();
      if (!content) {
        error.textContent = 'A message cannot be empty.';
        return;
      }
      save.disabled = true;
      const failure = await this.onEdit(entry.message, content);
      save.disabled = false;
      if (failure) {
        error.textContent = failure;
      } else {
        entry.message = { ...entry.message, content, edited_at: entry.message.edited_at ?? new Date().toISOString() };
        this.render(entry);
      }
    });
    text.replaceWith(form);
    el.querySelector('.message-actions')?.remove();
    input.focus();
  }
}
