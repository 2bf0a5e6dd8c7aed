import * as dgram from 'node:dgram';
import { expect, test } from '@playwright/test';
import { deployedServer, hydrated, sipOptions, watchConsole } from './support';

test('saving Server Config moves the node to new ports; a taken port is refused next to its field', async ({ page }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  await page.locator(`tr[data-ip="${ip}"] td.ip a`).click();
  await hydrated(page);

  await page.getByLabel('UDP port').fill('5090');
  await page.getByLabel('Interconnect').check();
  await page.getByRole('button', { name: 'Save configuration' }).click();
  await expect(page.getByRole('status')).toHaveText('Saved and applied to the node.');
  expect(await sipOptions(ip, 5090)).toBe('SIP/2.0 200 OK');
  await expect(sipOptions(ip, 5060, 1000)).rejects.toThrow('no SIP answer');

  // Someone else holds 5091 on this address: the save is refused and 5090 keeps serving.
  const squatter = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => squatter.bind(5091, ip, resolve));
  try {
    await page.getByLabel('UDP port').fill('5091');
    await page.getByRole('button', { name: 'Save configuration' }).click();
    await expect(page.locator('.field-error[data-field="udp_port"]')).toContainText('is in use');
    expect(await sipOptions(ip, 5090)).toBe('SIP/2.0 200 OK');
  } finally {
    squatter.close();
  }
  await page.reload();
  await expect(page.getByLabel('UDP port')).toHaveValue('5090');
  await expect(page.getByLabel('Interconnect')).toBeChecked();
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
