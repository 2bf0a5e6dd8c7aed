import * as dgram from 'node:dgram';
import { expect, test } from '@playwright/test';
import { deployedServer, hydrated, next, watchConsole } from './support';

/** The algorithms of the challenges a REGISTER to `ip` gets, in order. */
async function offered(ip: string): Promise<string[]> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  try {
    const local = `127.0.0.1:${socket.address().port}`;
    socket.send(
      `REGISTER sip:${ip} SIP/2.0\r\nVia: SIP/2.0/UDP ${local};branch=z9hG4bKdigest${Date.now()};rport\r\n` +
        `Max-Forwards: 70\r\nFrom: <sip:hardphone@${ip}>;tag=d1\r\nTo: <sip:hardphone@${ip}>\r\n` +
        `Call-ID: e2e-digest-${Date.now()}\r\nCSeq: 1 REGISTER\r\nContact: <sip:hardphone@${local}>\r\n` +
        `Content-Length: 0\r\n\r\n`,
      5060,
      ip,
    );
    const challenge = await next(socket);
    expect(challenge.split('\r\n')[0]).toBe('SIP/2.0 401 Unauthorized');
    return challenge
      .split('\r\n')
      .filter((line) => line.startsWith('WWW-Authenticate:'))
      .map((line) => (line.match(/algorithm=([A-Z0-9-]+)/) ?? [])[1] ?? '');
  } finally {
    socket.close();
  }
}

test('Digest algorithms: MD5 comes first by default, and SHA-256 only is what the node then offers', async ({ page }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  // Phones that read only the first challenge and know only MD5 can register.
  expect(await offered(ip)).toEqual(['MD5', 'SHA-256']);

  await page.locator(`tr[data-ip="${ip}"] td.ip a`).click();
  await hydrated(page);
  const choice = page.getByLabel('Digest algorithms');
  await expect(choice).toHaveValue('md5-sha256');
  await choice.selectOption({ label: 'SHA-256 only' });
  await page.getByRole('button', { name: 'Save configuration' }).click();
  await expect(page.getByRole('status')).toHaveText('Saved and applied to the node.');
  expect(await offered(ip)).toEqual(['SHA-256']);

  await page.reload();
  await hydrated(page);
  await expect(page.getByLabel('Digest algorithms')).toHaveValue('sha256');
  await page.getByLabel('Digest algorithms').scrollIntoViewIfNeeded();
  await page.screenshot({ path: 'test-results/digest-config.png', fullPage: true });
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
