import { expect, test } from '@playwright/test';
import { credit, hydrated, signUp, uniqueEmail, watchConsole } from './support';

test('the checklist moves with company details, terms and the first top-up', async ({ page }) => {
  const errors = watchConsole(page);
  const email = uniqueEmail('checklist');
  await signUp(page, email);
  await page.goto('/getting-started');
  await hydrated(page);
  await expect(page.getByTestId('checklist-progress')).toHaveText('0 of 3 complete');

  // A bad country is refused next to its field and nothing is stored.
  await page.getByLabel('Address').fill('1 Dock Road, London');
  await page.getByLabel('Country (two letters)').fill('G1');
  await page.getByRole('button', { name: 'Save company details' }).click();
  await expect(page.locator('.field-error[data-field="country"]')).toContainText('two-letter country code');
  await page.reload();
  await expect(page.getByTestId('checklist-progress')).toHaveText('0 of 3 complete');
  await expect(page.getByLabel('Address')).toHaveValue('');

  await page.getByLabel('Address').fill('1 Dock Road, London');
  await page.getByLabel('Country (two letters)').fill('gb');
  await page.getByRole('button', { name: 'Save company details' }).click();
  await expect(page.getByTestId('checklist-progress')).toHaveText('1 of 3 complete');
  await page.reload();
  await expect(page.getByLabel('Country (two letters)')).toHaveValue('GB');

  await page.getByRole('button', { name: 'Accept the terms of service' }).click();
  await expect(page.getByTestId('checklist-progress')).toHaveText('2 of 3 complete');

  credit(email, 20);
  await page.reload();
  await expect(page.getByTestId('checklist-progress')).toHaveText('3 of 3 complete');
  await expect(page.getByRole('link', { name: 'Deploy a server' })).toBeVisible();
  await page.goto('/account');
  await expect(page.getByTestId('account-balance')).toHaveText('$20.00');
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
