import { expect, test } from '@playwright/test';
import { deployedServer, hydrated, watchConsole } from './support';

test('the list shows measured latencies and follows a node change without reloading', async ({ page, context }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  const row = page.locator(`tr[data-ip="${ip}"]`);

  // Hovering the status icon shows SIP and ICMP round trips measured by the control plane.
  await row.locator('.dot').hover();
  const card = row.getByTestId('latency');
  await expect(card).toBeVisible();
  await expect(card).toContainText(/SIP latency: \d+\.\d\d ms · ICMP latency: (\d+\.\d\d ms|✗ no answer)/);

  // Another tab stops the server; this one is told without a reload.
  const other = await context.newPage();
  await other.goto(`/servers/${await row.getAttribute('data-server-id')}`);
  await hydrated(other);
  await other.locator('button[data-action="stop"]').click();
  await other.getByRole('dialog', { name: 'Confirm action' }).getByRole('button', { name: 'Confirm' }).click();
  await expect(other.getByTestId('status')).toHaveText('Stopped');

  await expect(row.getByTestId('status')).toContainText('Stopped', { timeout: 3000 });
  await row.locator('.dot').hover();
  await expect(row.getByTestId('latency')).toContainText('the node is not running');
  expect(errors).toEqual([]);
});

test('the list filters and pages', async ({ page }) => {
  const ip = await deployedServer(page);
  await expect(page.getByTestId('server-count')).toHaveText('1 servers');
  await page.getByLabel('Filter by type').selectOption('dispatcher');
  await expect(page.getByTestId('server-count')).toHaveText('0 servers');
  await expect(page.locator(`tr[data-ip="${ip}"]`)).toHaveCount(0);
  await page.getByLabel('Filter by type').selectOption('switch');
  await expect(page.locator(`tr[data-ip="${ip}"]`)).toHaveCount(1);
  await expect(page.getByTestId('page')).toHaveText('Page 1 of 1');
});
