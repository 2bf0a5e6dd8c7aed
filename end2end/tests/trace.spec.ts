import { expect, test } from '@playwright/test';
import { deployedServer, hydrated, sipOptions, watchConsole } from './support';

// The SIP trace on a server's page: what its node really received and sent, as its data
// zone's collector holds it; moving the server to the EU zone with TCP SIP Trace on sends
// the next messages to the EU collector over TCP.
test('the SIP trace shows what the node exchanged, from the data zone its config names', async ({ page }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  await page.locator(`tr[data-ip="${ip}"] td.ip a`).click();
  // A lazy route changes the URL once its chunk has loaded: wait for it.
  await expect(page).toHaveURL(/\/servers\/\d+$/);
  await hydrated(page);
  const detail = page.url();
  await page.getByRole('link', { name: 'SIP trace' }).click();
  await expect(page).toHaveURL(/\/servers\/\d+\/trace$/);
  const trace = page.locator('section.trace');

  expect(await sipOptions(ip)).toBe('SIP/2.0 200 OK');
  await trace.getByRole('button', { name: 'Refresh' }).click();
  await expect(trace.getByTestId('trace-collector')).toContainText('Kept in the US data zone');
  await expect(trace.getByTestId('trace-collector')).toContainText('shipped over UDP');
  const ours = trace.locator('tbody tr', { hasText: 'OPTIONS sip:ping@' });
  await expect(ours.first()).toBeVisible();
  await expect(ours.first().locator('td.shipped')).toHaveText('UDP');
  await expect(trace.locator('tbody tr', { hasText: 'SIP/2.0 200 OK' }).first()).toBeVisible();

  // The whole message opens from its first line.
  await ours.first().locator('summary').click();
  await expect(ours.first().locator('pre')).toContainText('Via: SIP/2.0/UDP 127.0.0.1:');

  await page.goto(detail);
  await hydrated(page);
  await page.getByLabel('Data zone').selectOption('eu');
  await page.getByLabel('TCP SIP Trace').check();
  await page.getByRole('button', { name: 'Save configuration' }).click();
  await expect(page.getByRole('status')).toHaveText('Saved and applied to the node.');
  expect(await sipOptions(ip)).toBe('SIP/2.0 200 OK');
  await page.getByRole('link', { name: 'SIP trace' }).click();
  await expect(page).toHaveURL(/\/servers\/\d+\/trace$/);
  await expect(trace.getByTestId('trace-collector')).toContainText('Kept in the EU data zone');
  await expect(trace.getByTestId('trace-collector')).toContainText('shipped over TCP');
  await expect(trace.locator('tbody tr', { hasText: 'OPTIONS sip:ping@' }).first()).toBeVisible();
  // The EU collector only ever got this server's messages over TCP.
  await expect(trace.locator('td.shipped', { hasText: 'UDP' })).toHaveCount(0);
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
