import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect, test } from '@playwright/test';
import { deployedServer, hydrated, watchConsole } from './support';

const fixture = (name: string) => fs.readFileSync(path.join(__dirname, '..', 'fixtures', name), 'utf8');

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
  await hydrated(page);
  const section = page.locator('section.certificates');
  await section.getByLabel('Type').selectOption('server');
  await section.getByRole('button', { name: 'Attach' }).click();
  await expect(section.locator('li[data-certificate]')).toContainText('CN=sip.example.com');
  await expect(section.locator('li[data-certificate]')).toContainText('Server');
  await section.getByRole('button', { name: 'Detach' }).click();
  await expect(section.locator('li[data-certificate]')).toHaveCount(0);
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
