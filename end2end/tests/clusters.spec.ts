import { expect, test } from '@playwright/test';
import { hydrated, signUp, uniqueEmail, watchConsole } from './support';

test('clusters are created, refused when the name repeats, renamed and deleted', async ({ page }) => {
  const errors = watchConsole(page);
  await signUp(page, uniqueEmail('clusters'));
  await page.getByRole('link', { name: 'Clusters' }).click();
  await hydrated(page);
  await expect(page.getByText('No clusters yet.')).toBeVisible();

  await page.getByLabel('Name', { exact: true }).fill('London core');
  await page.getByRole('button', { name: 'Create cluster' }).click();
  const row = page.locator('tr[data-cluster="London core"]');
  await expect(row.locator('.members')).toHaveText('0');

  await page.getByLabel('Name', { exact: true }).fill('London core');
  await page.getByRole('button', { name: 'Create cluster' }).click();
  await expect(page.locator('section .field-error[data-field="name"]')).toContainText('cluster with this name already');
  await expect(page.locator('tr[data-cluster]')).toHaveCount(1);

  await row.getByLabel('New name').fill('London edge');
  await row.getByRole('button', { name: 'Rename' }).click();
  const renamed = page.locator('tr[data-cluster="London edge"]');
  await expect(renamed).toBeVisible();

  await renamed.getByRole('button', { name: 'Delete' }).click();
  await expect(page.getByText('No clusters yet.')).toBeVisible();
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
