import * as dgram from 'node:dgram';
import { expect, test, type Page } from '@playwright/test';
import { completeChecklist, createSipUser, hydrated, next, register, signUp, uniqueEmail, watchConsole } from './support';

/** Deploys a Switch from the Servers page; returns its IP once it runs. */
async function deploy(page: Page, cluster: string, channels: string): Promise<string> {
  await page.goto('/servers');
  await hydrated(page);
  const rows = page.locator('table.servers tbody tr');
  const ips = () => rows.evaluateAll((all) => all.map((row) => row.getAttribute('data-ip') ?? ''));
  const before = await ips();
  const form = page.locator('section.deploy');
  await form.getByLabel('Zone').selectOption('eu-london');
  await form.getByLabel('Type').selectOption('switch');
  await form.getByLabel('Cluster').selectOption({ label: cluster });
  await form.getByLabel('Channels').fill(channels);
  await form.getByRole('button', { name: 'Deploy' }).click();
  await expect(rows).toHaveCount(before.length + 1);
  const ip = (await ips()).find((known) => !before.includes(known)) ?? '';
  await expect(page.locator(`tr[data-ip="${ip}"]`).getByTestId('status')).toHaveText('Running');
  return ip;
}

/** The next INVITE `socket` gets (keep-alives and others skipped), and who sent it. */
function nextInvite(socket: dgram.Socket): Promise<{ text: string; from: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off('message', listener);
      reject(new Error('no INVITE'));
    }, 5000);
    const listener = (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      const text = msg.toString();
      if (!text.startsWith('INVITE ')) return;
      clearTimeout(timer);
      socket.off('message', listener);
      resolve({ text, from: rinfo.address });
    };
    socket.on('message', listener);
  });
}

test('capacity failover offers only the cluster\'s members, and the full server then hands calls to the chosen one', async ({ page }) => {
  const errors = watchConsole(page);
  const email = uniqueEmail('failover');
  await signUp(page, email);
  await completeChecklist(page, email, 100);
  await page.goto('/clusters');
  await hydrated(page);
  await page.getByLabel('Name', { exact: true }).fill('Core');
  await page.getByRole('button', { name: 'Create cluster' }).click();
  await expect(page.locator('tr[data-cluster="Core"]')).toBeVisible();

  const a = await deploy(page, 'Core', '1');
  const b = await deploy(page, 'Core', '5');
  const c = await deploy(page, 'None', '5');
  expect(new Set([a, b, c]).size).toBe(3);
  // The Clusters page counts A and B, not C. Members share one count of calls, each admitting
  // while it is below its own limit: the cluster carries its largest member's 5 channels.
  await page.goto('/clusters');
  await hydrated(page);
  const core = page.locator('tr[data-cluster="Core"]');
  await expect(core.locator('.members')).toHaveText('2');
  await expect(core.locator('td').nth(2)).toHaveText('5');

  await createSipUser(page, 'bob', 'bob secret 42');

  const bob = await register(a, 'bob', 'bob secret 42');
  const carrier = dgram.createSocket('udp4');
  try {
    expect(bob.status).toBe('SIP/2.0 200 OK');
    await new Promise<void>((resolve) => carrier.bind(0, '127.0.0.1', resolve));
    const me = `127.0.0.1:${carrier.address().port}`;
    const call = (id: string) =>
      `INVITE sip:bob@${a} SIP/2.0\r\nVia: SIP/2.0/UDP ${me};branch=z9hG4bK${id};rport\r\nMax-Forwards: 70\r\n` +
      `From: <sip:+15550100@carrier.test>;tag=${id}\r\nTo: <sip:bob@${a}>\r\nCall-ID: ${id}\r\nCSeq: 1 INVITE\r\n` +
      `Contact: <sip:+15550100@${me}>\r\nContent-Length: 0\r\n\r\n`;
    const finalAnswer = async () => {
      for (let i = 0; i < 5; i++) {
        const answer = await next(carrier);
        if (!answer.startsWith('SIP/2.0 100 ')) return answer.split('\r\n')[0];
      }
      throw new Error('no final answer');
    };
    const stamp = Date.now();

    // A's one channel is taken by a ringing call; without failover the next call is refused.
    carrier.send(call(`fo-1-${stamp}`), 5060, a);
    expect((await nextInvite(bob.socket)).from).toBe(a);
    carrier.send(call(`fo-2-${stamp}`), 5060, a);
    expect(await finalAnswer()).toBe('SIP/2.0 503 Server at max cps / channels');

    // The detail page offers the other member of A's cluster, and nothing else.
    await page.goto('/servers');
    await hydrated(page);
    await page.locator(`tr[data-ip="${a}"] td.ip a`).click();
    await expect(page).toHaveURL(/\/servers\/\d+$/);
    await hydrated(page);
    const target = page.getByLabel('Failover target');
    const offered = await target.locator('option').allTextContents();
    expect(offered).toHaveLength(2);
    expect(offered[0]).toBe('None');
    expect(offered[1]).toContain(`(${b})`);
    await page.getByLabel('Enable capacity failover').check();
    await target.selectOption({ index: 1 });
    await page.getByRole('button', { name: 'Save configuration' }).click();
    await expect(page.getByRole('status')).toHaveText('Saved and applied to the node.');

    // Now the full server hands the next call to B, which rings bob from its own address.
    carrier.send(call(`fo-3-${stamp}`), 5060, a);
    const handed = await nextInvite(bob.socket);
    expect(handed.from).toBe(b);
    expect(handed.text).toContain(`Call-ID: fo-3-${stamp}`);

    await page.reload();
    await expect(page.getByLabel('Enable capacity failover')).toBeChecked();
    await expect(page.getByLabel('Failover target').locator('option:checked')).toContainText(`(${b})`);
  } finally {
    bob.socket.close();
    carrier.close();
  }
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
