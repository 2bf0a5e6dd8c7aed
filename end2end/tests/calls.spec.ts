import * as dgram from 'node:dgram';
import { expect, test } from '@playwright/test';
import { answer, createSipUser, deployedServer, headers, hydrated, next, register, watchConsole } from './support';

/** Waits for the next message on `socket` that starts with `start`, skipping others (NAT
 *  keep-alives, provisional answers). */
async function expectMessage(socket: dgram.Socket, start: string): Promise<string> {
  for (let i = 0; i < 10; i++) {
    const message = await next(socket, 5000);
    if (message.startsWith(start)) return message;
  }
  throw new Error(`no ${start}`);
}

// A real call through a deployed server: bob's phone registers with a SIP user, a carrier's
// caller rings him through the node, and while they talk the Servers page shows the channel
// taken, live; after the BYE it is free again.
test('a call through the server takes a channel on the live list until it hangs up', async ({ page }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  await createSipUser(page, 'bob', 'bob secret 42');

  const bob = await register(ip, 'bob', 'bob secret 42');
  const caller = dgram.createSocket('udp4');
  try {
    expect(bob.status).toBe('SIP/2.0 200 OK');
    await page.goto('/servers');
    await hydrated(page);
    const row = page.locator(`tr[data-ip="${ip}"]`);
    await expect(row.locator('td.channels')).toHaveText(/^0 \/ \d+$/);

    await new Promise<void>((resolve) => caller.bind(0, '127.0.0.1', resolve));
    const me = `127.0.0.1:${caller.address().port}`;
    const bobAt = `127.0.0.1:${bob.socket.address().port}`;
    const callId = `e2e-call-${Date.now()}`;
    const dialog = (method: string, cseq: number, uri: string, to: string, route: string) =>
      `${method} ${uri} SIP/2.0\r\nVia: SIP/2.0/UDP ${me};branch=z9hG4bK${method}${cseq}${callId};rport\r\n` +
      `${route ? `Route: ${route}\r\n` : ''}Max-Forwards: 70\r\nFrom: <sip:+15550100@carrier.test>;tag=caller\r\n` +
      `To: ${to}\r\nCall-ID: ${callId}\r\nCSeq: ${cseq} ${method}\r\nContact: <sip:+15550100@${me}>\r\nContent-Length: 0\r\n\r\n`;
    caller.send(dialog('INVITE', 1, `sip:bob@${ip}`, `<sip:bob@${ip}>`, ''), 5060, ip);

    const invite = await expectMessage(bob.socket, 'INVITE ');
    bob.socket.send(answer(invite, '180 Ringing', bobAt), 5060, ip);
    bob.socket.send(answer(invite, '200 OK', bobAt), 5060, ip);
    const ok = await expectMessage(caller, 'SIP/2.0 200 ');
    const route = headers(ok, 'Record-Route').join(', ');
    const target = headers(ok, 'Contact')[0].replace(/^<|>$/g, '');
    const to = headers(ok, 'To')[0];
    caller.send(dialog('ACK', 1, target, to, route), 5060, ip);
    await expectMessage(bob.socket, 'ACK ');

    // Talking: one channel in use, shown without a reload.
    await expect(row.locator('td.channels')).toHaveText(/^1 \/ \d+$/);

    caller.send(dialog('BYE', 2, target, to, route), 5060, ip);
    const bye = await expectMessage(bob.socket, 'BYE ');
    bob.socket.send(answer(bye, '200 OK', bobAt), 5060, ip);
    await expectMessage(caller, 'SIP/2.0 200 ');
    await expect(row.locator('td.channels')).toHaveText(/^0 \/ \d+$/);
  } finally {
    bob.socket.close();
    caller.close();
  }
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
