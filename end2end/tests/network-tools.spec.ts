import { expect, test } from '@playwright/test';
import { deployedServer, hydrated, watchConsole } from './support';

test('network tools ping and trace the route from the server, line by line; bad values are refused by field', async ({ page }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  await page.locator(`tr[data-ip="${ip}"] td.ip a`).click();
  await expect(page).toHaveURL(/\/servers\/\d+$/);
  await hydrated(page);
  await page.getByRole('link', { name: 'Network tools' }).click();
  await expect(page).toHaveURL(/\/servers\/\d+\/tools$/);
  await expect(page.getByRole('heading', { name: 'Network tools' })).toBeVisible();

  const output = page.getByTestId('tool-output');
  await page.getByLabel('Address').fill('localhost');
  await page.getByRole('button', { name: 'Run' }).click();
  await expect(page.locator('.field-error[data-field="target"]')).toContainText('Enter an IPv4 address');
  await expect(output).toHaveText('');

  // Three echo requests from the server's address, one a second, shown as they come back.
  await page.getByLabel('Address').fill('127.0.0.1');
  await page.getByLabel('Count').fill('3');
  await page.getByRole('button', { name: 'Run' }).click();
  await expect(page.locator('.field-error[data-field="target"]')).toHaveText('');
  await expect(output).toContainText(`PING 127.0.0.1 from ${ip}: 3 echo requests`);
  await expect(output).toContainText('bytes from 127.0.0.1: icmp_seq=0 time=');
  await expect(output).not.toContainText('3 sent');
  await expect(output).toContainText('3 sent, 3 received, 0% loss');
  await expect(page.getByRole('button', { name: 'Run' })).toBeEnabled();

  await page.getByLabel('Tool').selectOption('traceroute');
  await page.getByLabel('Count').fill('31');
  await page.getByRole('button', { name: 'Run' }).click();
  await expect(page.locator('.field-error[data-field="count"]')).toHaveText('Enter a whole number from 1 to 30.');
  await page.getByLabel('Count').fill('5');
  await page.getByRole('button', { name: 'Run' }).click();
  await expect(output).toContainText(`trace route to 127.0.0.1 from ${ip}, 5 hops at most`);
  await expect(output).toContainText('reached 127.0.0.1 in 1 hop');

  // The runs are in the account's audit log.
  await page.goto('/account');
  await expect(page.locator('table.audit tbody tr', { hasText: 'server.tool.traceroute' })).toContainText('to 127.0.0.1');
  expect(errors).toEqual([]);
});
