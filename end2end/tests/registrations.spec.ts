import { createHash } from 'node:crypto';
import * as dgram from 'node:dgram';
import { expect, test } from '@playwright/test';
import { deployedServer, hydrated, watchConsole } from './support';

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

/** Waits for the next datagram on `socket`. */
function next(socket: dgram.Socket, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no SIP answer')), timeoutMs);
    socket.once('message', (msg) => {
      clearTimeout(timer);
      resolve(msg.toString());
    });
  });
}

/** A phone registering `user` at `ip:5060`, answering the MD5 digest challenge. */
async function register(ip: string, user: string, password: string): Promise<{ status: string; socket: dgram.Socket }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const local = `127.0.0.1:${socket.address().port}`;
  const request = (cseq: number, auth: string) =>
    `REGISTER sip:${ip} SIP/2.0\r\nVia: SIP/2.0/UDP ${local};branch=z9hG4bKe2e${cseq}${Date.now()};rport\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:${user}@${ip}>;tag=e2e${cseq}\r\nTo: <sip:${user}@${ip}>\r\n` +
    `Call-ID: e2e-reg-${user}\r\nCSeq: ${cseq} REGISTER\r\nContact: <sip:${user}@${local}>\r\nExpires: 600\r\n` +
    `User-Agent: e2e-phone\r\n${auth}Content-Length: 0\r\n\r\n`;
  socket.send(request(1, ''), 5060, ip);
  const challenge = await next(socket);
  const line = challenge.split('\r\n').find((l) => l.startsWith('WWW-Authenticate:') && l.includes('MD5')) ?? '';
  const param = (name: string) => (line.match(new RegExp(`${name}="([^"]*)"`)) ?? [])[1] ?? '';
  const [realm, nonce, opaque] = [param('realm'), param('nonce'), param('opaque')];
  const uri = `sip:${ip}`;
  const response = md5(`${md5(`${user}:${realm}:${password}`)}:${nonce}:00000001:e2ecnonce:auth:${md5(`REGISTER:${uri}`)}`);
  const auth =
    `Authorization: Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", ` +
    `response="${response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="e2ecnonce", opaque="${opaque}"\r\n`;
  socket.send(request(2, auth), 5060, ip);
  const answer = await next(socket);
  return { status: answer.split('\r\n')[0], socket };
}

test('a phone registered with a SIP user shows in the server\'s Registrations', async ({ page }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  await page.getByRole('link', { name: 'SIP Users' }).click();
  await hydrated(page);
  await page.getByLabel('Username').fill('desk42');
  await page.getByLabel('Password', { exact: true }).fill('desk 42 secret');
  await page.getByRole('button', { name: 'Create SIP user' }).click();
  await expect(page.locator('tr[data-user="desk42"]')).toBeVisible();

  const wrong = await register(ip, 'desk42', 'not the secret');
  wrong.socket.close();
  expect(wrong.status).toMatch(/^SIP\/2\.0 401/);
  const phone = await register(ip, 'desk42', 'desk 42 secret');
  try {
    expect(phone.status).toBe('SIP/2.0 200 OK');
    await page.goto('/servers');
    await page.locator(`tr[data-ip="${ip}"] td.ip a`).click();
    await hydrated(page);
    const row = page.locator('section.registrations tbody tr').first();
    await expect(row).toContainText(`sip:desk42@${ip}`);
    await expect(row).toContainText('127.0.0.1:');
    await expect(row).toContainText('UDP');
    await expect(row).toContainText('Online');
  } finally {
    phone.socket.close();
  }
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
