import * as dgram from 'node:dgram';
import { expect, test, type Page } from '@playwright/test';
import { answer, completeChecklist, createSipUser, hydrated, next, register, signUp, uniqueEmail, watchConsole } from './support';

/** Deploys a server of `kind` into `cluster` from the Servers page; returns its IP once it runs. */
async function deploy(page: Page, kind: string, cluster: string): Promise<string> {
  await page.goto('/servers');
  await hydrated(page);
  const rows = page.locator('table.servers tbody tr[data-ip]');
  const ips = () => rows.evaluateAll((all) => all.map((row) => row.getAttribute('data-ip') ?? ''));
  const before = await ips();
  const form = page.locator('section.deploy');
  await form.getByLabel('Zone').selectOption('eu-london');
  await form.getByLabel('Type').selectOption(kind);
  await form.getByLabel('Cluster').selectOption({ label: cluster });
  await form.getByRole('button', { name: 'Deploy' }).click();
  await expect(rows).toHaveCount(before.length + 1);
  const ip = (await ips()).find((known) => !before.includes(known)) ?? '';
  await expect(page.locator(`tr[data-ip="${ip}"]`).getByTestId('status')).toHaveText('Running');
  return ip;
}

/** Calls bob through the Dispatcher at `edge`; his phone answers 486, which ends the call. */
async function busyCall(caller: dgram.Socket, phone: dgram.Socket, edge: string, callId: string): Promise<void> {
  const me = `127.0.0.1:${caller.address().port}`;
  caller.send(
    `INVITE sip:bob@${edge} SIP/2.0\r\nVia: SIP/2.0/UDP ${me};branch=z9hG4bK${callId};rport\r\n` +
      `Max-Forwards: 70\r\nFrom: <sip:+15550100@carrier.test>;tag=caller\r\nTo: <sip:bob@${edge}>\r\n` +
      `Call-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContact: <sip:+15550100@${me}>\r\nContent-Length: 0\r\n\r\n`,
    5060,
    edge,
  );
  for (let i = 0; i < 20; i++) {
    const message = await next(phone, 5000);
    if (!message.startsWith('INVITE ') || !message.includes(`Call-ID: ${callId}\r\n`)) continue;
    phone.send(answer(message, '486 Busy Here', `127.0.0.1:${phone.address().port}`), 5060, edge);
    for (let j = 0; j < 20; j++) {
      const final = await next(caller, 5000);
      if (final.includes(`Call-ID: ${callId}\r\n`) && final.startsWith('SIP/2.0 486')) return;
    }
  }
  throw new Error(`call ${callId} did not end with 486`);
}

// A cluster with a Dispatcher and two Switches: calls through the Dispatcher reach a phone
// registered through it; stopping a switch shows it Inactive on the Dispatcher's page and
// red in the cluster's picture, starting it brings it back.
test('a Dispatcher balances its cluster and shows its switches live', async ({ page, context }) => {
  test.setTimeout(120_000);
  const errors = watchConsole(page);
  const email = uniqueEmail('edge');
  await signUp(page, email);
  await completeChecklist(page, email, 200);
  await page.goto('/clusters');
  await hydrated(page);
  await page.getByLabel('Name', { exact: true }).fill('Edge');
  await page.getByRole('button', { name: 'Create cluster' }).click();
  await expect(page.locator('tr[data-cluster="Edge"]')).toBeVisible();

  const switchA = await deploy(page, 'switch', 'Edge');
  const switchB = await deploy(page, 'switch', 'Edge');
  const edge = await deploy(page, 'dispatcher', 'Edge');
  await createSipUser(page, 'bob', 'bob secret 42');
  const bob = await register(edge, 'bob', 'bob secret 42');
  const caller = dgram.createSocket('udp4');
  try {
    expect(bob.status).toBe('SIP/2.0 200 OK');
    await new Promise<void>((resolve) => caller.bind(0, '127.0.0.1', resolve));
    for (let i = 0; i < 4; i++) await busyCall(caller, bob.socket, edge, `e2e-edge-${Date.now()}-${i}`);

    // The Dispatcher's page: its switches, Active, two calls each; probes every second.
    await page.goto('/servers');
    await hydrated(page);
    await page.locator(`tr[data-ip="${edge}"] td.ip a`).click();
    await hydrated(page);
    const switches = page.locator('table.switches');
    await expect(switches.locator(`tr[data-switch="${switchA}"] [data-testid="switch-state"]`)).toHaveText('Active');
    await expect(switches.locator(`tr[data-switch="${switchB}"] [data-testid="switch-calls"]`)).toHaveText('2');
    await page.getByLabel('Probe interval (seconds)').fill('1');
    await page.getByRole('button', { name: 'Save configuration' }).click();
    await expect(page.getByText('Saved and applied to the node.')).toBeVisible();

    // Stop switch A from its own page (another tab).
    const other = await context.newPage();
    await other.goto('/servers');
    await hydrated(other);
    await other.locator(`tr[data-ip="${switchA}"] td.ip a`).click();
    await hydrated(other);
    await other.locator('button[data-action="stop"]').click();
    await other.getByRole('dialog', { name: 'Confirm action' }).getByRole('button', { name: 'Confirm' }).click();
    await expect(other.getByTestId('status')).toHaveText('Stopped');
    await expect(switches.locator(`tr[data-switch="${switchA}"] [data-testid="switch-state"]`)).toHaveText('Inactive', { timeout: 8000 });
    // Calls still connect, through switch B.
    for (let i = 0; i < 2; i++) await busyCall(caller, bob.socket, edge, `e2e-edge-down-${Date.now()}-${i}`);

    // The Clusters page draws the cluster, switch A red.
    await other.goto('/clusters');
    await hydrated(other);
    const picture = other.locator('section.picture[data-cluster="Edge"]');
    await expect(picture.locator(`g[data-server="${edge}"]`)).toHaveClass(/up/);
    await expect(picture.locator(`g[data-server="${switchA}"]`)).toHaveClass(/down/);
    await expect(picture.locator(`g[data-server="${switchB}"]`)).toHaveAttribute('data-state', 'Active');

    // Started again: Active on the Dispatcher's page and in the picture.
    const back = await context.newPage();
    await back.goto('/servers');
    await hydrated(back);
    await back.locator(`tr[data-ip="${switchA}"] td.ip a`).click();
    await hydrated(back);
    await back.locator('button[data-action="start"]').click();
    await back.getByRole('dialog', { name: 'Confirm action' }).getByRole('button', { name: 'Confirm' }).click();
    await expect(switches.locator(`tr[data-switch="${switchA}"] [data-testid="switch-state"]`)).toHaveText('Active', { timeout: 10_000 });
    await expect(picture.locator(`g[data-server="${switchA}"]`)).toHaveClass(/up/, { timeout: 6000 });
    expect(errors).toEqual([]);
  } finally {
    caller.close();
    bob.socket.close();
  }
});
