// Two people in two browser contexts: sign up, create, find in the
// directory, join, talk in real time, edit, delete, typing, presence, and a
// session that survives a reload; then an outage: one goes offline, the other
// keeps talking, and on return every missed message shows once, in order.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, person, uniqueName, signUp, logIn, until, connectionIs, send, messageTexts,
  messageLog, channelsNav, directory, openChannel, register, http, screenshot,
} from '../lib.js';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

test('two people find each other in a public channel and talk in real time', async () => {
  const ann = await person(browser);
  const bob = await person(browser);
  const annName = uniqueName('ann');
  const bobName = uniqueName('bob');
  const room = uniqueName('room');

  await signUp(ann.page, annName);
  await ann.page.getByRole('button', { name: 'New channel', exact: true }).click();
  await ann.page.getByLabel('Channel name', { exact: true }).fill(room);
  assert.equal(await ann.page.getByRole('checkbox', { name: 'Private', exact: true }).isChecked(), false);
  await ann.page.getByRole('button', { name: 'Create', exact: true }).click();
  await until('the new channel in ann\'s Channels', async () =>
    (await channelsNav(ann.page).textContent()).includes(room));

  await signUp(bob.page, bobName);
  // The directory is on the main screen without a click; search narrows it.
  await directory(bob.page).getByLabel('Search channels').fill(room);
  const entry = directory(bob.page).getByRole('listitem').filter({ hasText: room });
  await until('the room in the directory', async () => (await entry.count()) === 1);
  await entry.getByRole('button', { name: 'Join', exact: true }).click();
  await until('the room in bob\'s Channels', async () =>
    (await channelsNav(bob.page).textContent()).includes(room));
  await until('bob in the open room', async () =>
    (await bob.page.locator('#channel-title').textContent()) === room);

  // Presence: each sees the other online.
  await until('bob online for ann', async () =>
    (await ann.page.getByLabel('Online', { exact: true }).textContent()).includes(bobName));

  await send(ann.page, 'hello from ann');
  const bobsCopy = messageLog(bob.page).getByRole('article').filter({ hasText: 'hello from ann' });
  await until('ann\'s message at bob', async () => (await bobsCopy.count()) === 1);
  assert.ok((await bobsCopy.textContent()).includes(annName), 'the article names its sender');

  // Typing shows on the other side, under its own name (not Connection).
  await bob.page.getByLabel('Message', { exact: true }).pressSequentially('hi a', { delay: 20 });
  await until('bob typing at ann', async () =>
    (await ann.page.getByRole('status', { name: 'Typing', exact: true }).textContent()) === `${bobName} is typing…`);
  await bob.page.getByLabel('Message', { exact: true }).fill('hi ann, bob here');
  await bob.page.getByRole('button', { name: 'Send', exact: true }).click();
  await until('bob\'s reply at ann', async () =>
    (await messageTexts(ann.page)).join('|') === 'hello from ann|hi ann, bob here');
  assert.deepEqual(await messageTexts(bob.page), ['hello from ann', 'hi ann, bob here'], 'oldest first');
  await screenshot(ann.page, 'conversation');

  // Edit: both sides show the new text.
  // The first article; once in edit mode its text sits in an input, so it is
  // not found by its text any more.
  const annsMessage = messageLog(ann.page).getByRole('article').first();
  assert.ok((await annsMessage.textContent()).includes('hello from ann'));
  await annsMessage.getByRole('button', { name: 'Edit', exact: true }).click();
  await annsMessage.getByLabel('Edit message', { exact: true }).fill('hello (edited) from ann');
  await annsMessage.getByRole('button', { name: 'Save', exact: true }).click();
  for (const who of [ann, bob]) {
    await until('the edit on both sides', async () =>
      (await messageTexts(who.page))[0] === 'hello (edited) from ann');
  }

  // Delete: gone on both sides, its place kept as a tombstone.
  await messageLog(ann.page).getByRole('article').first().getByRole('button', { name: 'Delete', exact: true }).click();
  for (const who of [ann, bob]) {
    await until('the delete on both sides', async () =>
      (await messageTexts(who.page)).join('|') === 'This message was deleted.|hi ann, bob here');
  }

  // A reload keeps the session and the open channel.
  await bob.page.reload();
  await connectionIs(bob.page, 'connected');
  await until('bob still in the room after reload', async () =>
    (await messageTexts(bob.page)).join('|') === 'This message was deleted.|hi ann, bob here');
  assert.equal(await bob.page.getByRole('button', { name: 'Log out', exact: true }).isVisible(), true);
  assert.ok(!bob.page.url().includes('token'), 'no token in the page URL');

  // Log out, log back in.
  await bob.page.getByRole('button', { name: 'Log out', exact: true }).click();
  await bob.page.getByRole('button', { name: 'Log in', exact: true }).waitFor();
  await logIn(bob.page, bobName);
  await until('the room again after logging in', async () =>
    (await channelsNav(bob.page).textContent()).includes(room));

  for (const who of [ann, bob]) assert.deepEqual(who.problems, []);
  await ann.context.close();
  await bob.context.close();
});

test('unread counts show in Channels for a room I am not looking at', async () => {
  const cat = await register(uniqueName('cat'));
  const dan = uniqueName('dan');
  const { token: danToken } = await register(dan);
  const quiet = uniqueName('quiet');
  const busy = uniqueName('busy');
  const ids = {};
  for (const name of [quiet, busy]) {
    ids[name] = (await http('POST', '/api/channels', { token: cat.token, body: { name, kind: 'public' } })).channel_id;
    await http('POST', `/api/channels/${ids[name]}/members`, { token: danToken, body: {} });
  }
  const { page, context, problems } = await person(browser);
  await logIn(page, dan);
  await until('both rooms listed', async () => {
    const text = await channelsNav(page).textContent();
    return text.includes(quiet) && text.includes(busy);
  });
  await openChannel(page, quiet);
  for (const n of [1, 2, 3]) {
    await http('POST', `/api/channels/${ids[busy]}/messages`, { token: cat.token, body: { content: `busy ${n}` } });
  }
  const busyButton = channelsNav(page).getByRole('button').filter({ hasText: busy });
  await until('3 unread in busy', async () => (await busyButton.textContent()).includes('3 unread'));
  await openChannel(page, busy);
  await until('busy read', async () => (await busyButton.textContent()).includes('0 unread'));
  assert.deepEqual(await messageTexts(page), ['busy 1', 'busy 2', 'busy 3']);
  // The read pointer reached the server, not only the page.
  await until('the read pointer at seq 3 on the server', async () => {
    const mine = await http('GET', '/api/channels', { token: danToken });
    return mine.channels.find((c) => c.channel_id === ids[busy])?.read_seq === 3;
  });
  assert.deepEqual(problems, []);
  await context.close();
});

test('offline: reconnecting…, then every missed message once and in order', async () => {
  const eve = uniqueName('eve');
  const fay = uniqueName('fay');
  const { token: eveToken } = await register(eve);
  const { token: fayToken } = await register(fay);
  const room = uniqueName('outage');
  const { channel_id: id } = await http('POST', '/api/channels', { token: eveToken, body: { name: room, kind: 'public' } });
  await http('POST', `/api/channels/${id}/members`, { token: fayToken, body: {} });
  await http('POST', `/api/channels/${id}/messages`, { token: fayToken, body: { content: 'before 1' } });

  const first = await person(browser);
  const second = await person(browser);
  await logIn(first.page, eve);
  await logIn(second.page, fay);
  await openChannel(first.page, room);
  await openChannel(second.page, room);
  await until('eve sees the first message', async () => (await messageTexts(first.page)).join('|') === 'before 1');

  // What eve's page says and hears on its sockets (every socket, old and new).
  const sent = [];
  const received = [];
  first.page.on('websocket', (ws) => {
    ws.on('framesent', (f) => sent.push(JSON.parse(f.payload)));
    ws.on('framereceived', (f) => received.push(JSON.parse(f.payload)));
  });
  await first.context.setOffline(true);
  await connectionIs(first.page, 'reconnecting…', 5000);
  const missed = ['missed 1', 'missed 2', 'missed 3', 'missed 4', 'missed 5', 'missed 6'];
  for (const text of missed) {
    await send(second.page, text);
    await until(`fay's own ${text}`, async () => (await messageTexts(second.page)).includes(text));
  }
  // Still offline: nothing arrived, and the page says so.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.deepEqual(await messageTexts(first.page), ['before 1']);
  assert.equal(await first.page.getByRole('status', { name: 'Connection', exact: true }).textContent(), 'reconnecting…');
  await screenshot(first.page, 'reconnecting');

  await first.context.setOffline(false);
  await connectionIs(first.page, 'connected', 20000);
  const expected = ['before 1', ...missed];
  await until('every missed message', async () => (await messageTexts(first.page)).length >= expected.length, 20000);
  // Give duplicates, if any, time to show before judging.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.deepEqual(await messageTexts(first.page), expected, 'each missed message once, in order');
  // Resumed by the cursor, not re-read: the new socket asked for what came
  // after seq 1, and the missed messages arrived on it as frames, in order.
  const resume = sent.filter((f) => f.type === 'subscribe' && f.channel_id === id);
  assert.deepEqual(resume.map((f) => f.after_seq), [1], JSON.stringify(resume));
  const replayed = received.filter((f) => f.type === 'message' && f.channel_id === id).map((f) => f.content);
  assert.deepEqual(replayed, missed, 'replayed over the socket');

  // And live again afterwards.
  await send(second.page, 'after');
  await until('the live message after the outage', async () =>
    (await messageTexts(first.page)).join('|') === [...expected, 'after'].join('|'));

  for (const who of [first, second]) assert.deepEqual(who.problems, []);
  await first.context.close();
  await second.context.close();
});

test('a message with markup shows as text and injects nothing', async () => {
  const gil = uniqueName('gil');
  const hal = uniqueName('hal');
  const { token } = await register(gil);
  const { token: halToken } = await register(hal);
  const room = uniqueName('xss');
  const { channel_id: id } = await http('POST', '/api/channels', { token, body: { name: room, kind: 'public' } });
  await http('POST', `/api/channels/${id}/members`, { token: halToken, body: {} });
  const sender = await person(browser);
  const reader = await person(browser);
  await logIn(sender.page, gil);
  await logIn(reader.page, hal);
  await openChannel(sender.page, room);
  await openChannel(reader.page, room);

  const evil = '<img src=x onerror="window.__pwned=1"><b>bold</b><script>window.__pwned=2</script>';
  await send(sender.page, evil);
  for (const who of [sender, reader]) {
    await until('the markup as text', async () => (await messageTexts(who.page)).includes(evil));
    assert.equal(await messageLog(who.page).locator('img, b, script').count(), 0, 'no element from the message');
    assert.equal(await who.page.evaluate(() => window.__pwned), undefined);
    assert.deepEqual(who.problems, []);
  }
  await sender.context.close();
  await reader.context.close();
});

test('a missed pong drops the socket at once: reconnecting…, then resumed', async () => {
  const name = uniqueName('ida');
  const other = uniqueName('jon');
  const { token } = await register(name);
  const { token: otherToken } = await register(other);
  const room = uniqueName('silent');
  const { channel_id: id } = await http('POST', '/api/channels', { token, body: { name: room, kind: 'public' } });
  await http('POST', `/api/channels/${id}/members`, { token: otherToken, body: {} });

  // A socket that stays open but stops answering: the page's frames reach
  // the server, the server's pongs are swallowed (no offline event at all).
  let swallowPongs = false;
  const { page, context, problems } = await person(browser, {
    beforeLoad: (ctx) => ctx.routeWebSocket(/\/ws/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((message) => {
        if (swallowPongs && String(message).includes('"type":"pong"')) return;
        ws.send(message);
      });
    }),
  });
  await logIn(page, name);
  await openChannel(page, room);
  swallowPongs = true;
  // Ping every 5 s, pong due within 4 s: the drop comes within ~10 s.
  await connectionIs(page, 'reconnecting…', 15000);
  await http('POST', `/api/channels/${id}/messages`, { token: otherToken, body: { content: 'while silent' } });
  swallowPongs = false;
  await connectionIs(page, 'connected', 20000);
  await until('the message sent while the socket was dead', async () =>
    (await messageTexts(page)).join('|') === 'while silent', 15000);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.deepEqual(await messageTexts(page), ['while silent'], 'once');
  assert.deepEqual(problems, []);
  await context.close();
});

test('a private channel: invite by user ID, refusals in words, kick and leave', async () => {
  const owner = await person(browser);
  const guest = await person(browser);
  const ownerName = uniqueName('kay');
  const guestName = uniqueName('lou');
  const room = uniqueName('private');
  await signUp(owner.page, ownerName);
  await signUp(guest.page, guestName);
  const guestId = await guest.page.locator('#my-id').textContent();

  await owner.page.getByRole('button', { name: 'New channel', exact: true }).click();
  await owner.page.getByLabel('Channel name', { exact: true }).fill(room);
  await owner.page.getByRole('checkbox', { name: 'Private', exact: true }).check();
  await owner.page.getByRole('button', { name: 'Create', exact: true }).click();
  await until('the private room open', async () =>
    (await owner.page.locator('#channel-title').textContent()) === room);
  // Private: not in anyone's directory.
  await guest.page.getByLabel('Search channels').fill(room);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(await directory(guest.page).getByRole('listitem').filter({ hasText: room }).count(), 0);

  await owner.page.locator('#people summary').click();
  const inviteField = owner.page.getByLabel('User ID to invite', { exact: true });
  const refusal = owner.page.locator('#channel-error');
  // Refused by the page, then by the server: each in words.
  await inviteField.fill('not-an-id');
  await owner.page.getByRole('button', { name: 'Invite', exact: true }).click();
  await until('a malformed id refused', async () => (await refusal.textContent()).startsWith('That is not a user ID'));
  await inviteField.fill('00000000-0000-4000-8000-000000000000');
  await owner.page.getByRole('button', { name: 'Invite', exact: true }).click();
  await until('an unknown user refused', async () => (await refusal.textContent()) === 'No user has that ID.');
  await inviteField.fill(guestId);
  await owner.page.getByRole('button', { name: 'Invite', exact: true }).click();
  await until('the invitation accepted', async () => (await refusal.textContent()) === '');

  // The guest's list refreshes on its own; a reload shows it at once.
  await guest.page.reload();
  await connectionIs(guest.page, 'connected');
  await until('the private room in the guest\'s Channels', async () =>
    (await channelsNav(guest.page).textContent()).includes(room));
  await openChannel(guest.page, room);
  await send(guest.page, 'thanks for the invite');
  await until('the guest\'s message at the owner', async () =>
    (await messageTexts(owner.page)).includes('thanks for the invite'));

  // Only the sender may edit: the owner has no Edit on the guest's message.
  const guestsMessage = messageLog(owner.page).getByRole('article').filter({ hasText: 'thanks for the invite' });
  assert.equal(await guestsMessage.getByRole('button', { name: 'Edit' }).count(), 0);

  // Kick: the guest's page says so and drops the channel.
  await until('the guest among the members', async () =>
    (await owner.page.locator('#members').textContent()).includes(guestName), 20000);
  await owner.page.getByRole('button', { name: `Kick ${guestName}`, exact: true }).click();
  await until('the kick noticed by the guest', async () =>
    (await guest.page.locator('#channels-notice').textContent()) === `You were removed from ${room}.`);
  assert.equal(await channelsNav(guest.page).getByRole('button').filter({ hasText: room }).count(), 0);
  assert.equal(await guest.page.locator('#channel-view').isVisible(), false);

  // The owner cannot leave (the button is not offered); a member can.
  assert.equal(await owner.page.getByRole('button', { name: 'Leave channel' }).isVisible(), false);
  const open = uniqueName('open');
  const { channel_id: openId } = await http('POST', '/api/channels', {
    token: (await register(uniqueName('own'))).token, body: { name: open, kind: 'public' },
  });
  await guest.page.getByLabel('Search channels').fill(open);
  const entry = directory(guest.page).getByRole('listitem').filter({ hasText: open });
  await until('the public room in the directory', async () => (await entry.count()) === 1);
  await entry.getByRole('button', { name: 'Join', exact: true }).click();
  await until('joined', async () => (await guest.page.locator('#channel-title').textContent()) === open);
  await guest.page.locator('#people summary').click();
  await guest.page.getByRole('button', { name: 'Leave channel', exact: true }).click();
  await until('left', async () =>
    (await channelsNav(guest.page).getByRole('button').filter({ hasText: open }).count()) === 0);
  assert.ok(openId);

  for (const who of [owner, guest]) assert.deepEqual(who.problems, []);
  await owner.context.close();
  await guest.context.close();
});
