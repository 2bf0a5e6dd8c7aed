import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { expect, test, type Page } from '@playwright/test';
import { deployedServer, hydrated, watchConsole } from './support';

const fixture = (name: string) => fs.readFileSync(path.join(__dirname, '..', 'fixtures', name), 'utf8');

/** One SIP OPTIONS over TLS: the common name of the certificate the node presented, and the
 *  status line of its answer. (The fixture is its own CA, so it is checked by name here,
 *  not by a trust store.) */
function optionsOverTls(ip: string, port = 5061): Promise<{ cn: string; status: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: ip, port, servername: 'sip.example.com', rejectUnauthorized: false }, () => {
      const cn = String(socket.getPeerCertificate().subject?.CN ?? '');
      const local = `${socket.localAddress}:${socket.localPort}`;
      socket.write(
        `OPTIONS sip:sip.example.com SIP/2.0\r\nVia: SIP/2.0/TLS ${local};branch=z9hG4bKe2etls\r\n` +
          `Max-Forwards: 70\r\nFrom: <sip:e2e@sip.example.com>;tag=e2e\r\nTo: <sip:sip.example.com>\r\n` +
          `Call-ID: e2e-tls-${Date.now()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`,
      );
      socket.once('data', (data) => {
        socket.end();
        resolve({ cn, status: data.toString().split('\r\n')[0] });
      });
    });
    socket.setTimeout(3000, () => {
      socket.destroy();
      reject(new Error('no TLS answer'));
    });
    socket.on('error', reject);
  });
}

/** One SIP OPTIONS from the page over a secure WebSocket (RFC 7118, subprotocol `sip`), as
 *  a WebRTC client sends it: the status line of the answer. */
function optionsOverWebSocket(page: Page, ip: string, port = 7443): Promise<string> {
  return page.evaluate(
    ({ ip, port }) =>
      new Promise<string>((resolve, reject) => {
        const socket = new WebSocket(`wss://${ip}:${port}`, 'sip');
        const timer = setTimeout(() => reject(new Error('no WebSocket answer')), 5000);
        socket.onopen = () =>
          socket.send(
            `OPTIONS sip:sip.example.com SIP/2.0\r\nVia: SIP/2.0/WSS e2e.invalid;branch=z9hG4bKe2ews\r\n` +
              `Max-Forwards: 70\r\nFrom: <sip:e2e@sip.example.com>;tag=e2e\r\nTo: <sip:sip.example.com>\r\n` +
              `Call-ID: e2e-ws-${Date.now()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`,
          );
        socket.onmessage = (event) => {
          clearTimeout(timer);
          socket.close();
          resolve(String(event.data).split('\r\n')[0]);
        };
        socket.onerror = () => reject(new Error('WebSocket failed'));
      }),
    { ip, port },
  );
}

// The fixture certificate names sip.example.com and is its own CA; the page reaches the node
// by IP, so the browser is told to accept it.
test.use({ ignoreHTTPSErrors: true });

test('a certificate is checked, listed without its key, attached as Server and detached', async ({ page }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  await page.getByRole('link', { name: 'Certificates' }).click();
  await hydrated(page);

  // A key of another certificate is refused next to the key field; nothing is stored.
  await page.getByLabel('Certificate chain (PEM)').fill(fixture('sip.example.com.crt'));
  await page.getByLabel('Private key (PEM)').fill(fixture('other.key'));
  await page.getByRole('button', { name: 'Upload' }).click();
  await expect(page.locator('.field-error[data-field="key"]')).toHaveText('This private key does not belong to the certificate.');
  await expect(page.getByText('No certificates yet.')).toBeVisible();

  await page.getByLabel('Private key (PEM)').fill(fixture('sip.example.com.key'));
  await page.getByRole('button', { name: 'Upload' }).click();
  const row = page.locator('table.certificates tbody tr').first();
  await expect(row).toContainText('CN=sip.example.com');
  await expect(row.locator('.sans')).toHaveText('sip.example.com, edge.example.com');
  await expect(row).toContainText('2126');
  expect(await page.content()).not.toContain('PRIVATE KEY-----\nMI');

  await page.goto('/servers');
  await page.locator(`tr[data-ip="${ip}"] td.ip a`).click();
  // A lazy route changes the URL once its chunk has loaded: wait for it.
  await expect(page).toHaveURL(/\/servers\/\d+$/);
  await hydrated(page);
  const detail = page.url();
  await page.getByRole('link', { name: 'Attached certificates' }).click();
  await expect(page).toHaveURL(/\/servers\/\d+\/certificates$/);
  const section = page.locator('section.certificates');
  await section.getByLabel('Type').selectOption('server');
  await section.getByRole('button', { name: 'Attach' }).click();
  await expect(section.locator('li[data-certificate]')).toContainText('CN=sip.example.com');
  await expect(section.locator('li[data-certificate]')).toContainText('Server');

  // With an FQDN as well, the node serves SIP over TLS with that certificate.
  await page.getByRole('link', { name: 'Back to the server' }).click();
  await expect(page).toHaveURL(detail);
  await hydrated(page);
  await expect(page.getByTestId('tls-status')).toContainText('off');
  await page.getByLabel('WebRTC / TLS FQDN').fill('sip.example.com');
  await page.getByRole('button', { name: 'Save configuration' }).click();
  await expect(page.getByTestId('tls-status')).toHaveText(
    'SIP over TLS and secure WebSocket (WebRTC): served on port 5061; secure WebSocket also on 7443, which browsers can reach.',
  );
  expect(await optionsOverTls(ip)).toEqual({ cn: 'sip.example.com', status: 'SIP/2.0 200 OK' });
  // A WebRTC client in this very browser reaches the node over a secure WebSocket.
  expect(await optionsOverWebSocket(page, ip)).toBe('SIP/2.0 200 OK');

  await page.getByRole('link', { name: 'Attached certificates' }).click();
  await section.getByRole('button', { name: 'Detach' }).click();
  await expect(section.locator('li[data-certificate]')).toHaveCount(0);
  await expect(optionsOverTls(ip)).rejects.toThrow();
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
