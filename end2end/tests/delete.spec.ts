import { expect, test } from '@playwright/test';
import { completeChecklist, deployedServer, hydrated, signUp, sipOptions, uniqueEmail, watchConsole } from './support';

test('Delete asks first, naming what goes; once confirmed the row and its node are gone', async ({ page, context }) => {
  const errors = watchConsole(page);
  const ip = await deployedServer(page);
  const row = page.locator(`tr[data-ip="${ip}"]`);
  await row.locator('td.ip a').click();
  await expect(page).toHaveURL(/\/servers\/\d+$/);
  await hydrated(page);

  // Cancel first: nothing happens.
  await page.getByRole('button', { name: 'Delete Server' }).click();
  const dialog = page.getByRole('dialog', { name: 'Confirm delete' });
  await expect(dialog).toContainText(`its address ${ip} is freed`);
  await expect(dialog).toContainText('live calls are ended (both ends get a BYE)');
  await expect(dialog).toContainText('This cannot be undone.');
  await page.screenshot({ path: 'test-results/delete-confirm.png', fullPage: true });
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toHaveCount(0);
  expect(await sipOptions(ip)).toBe('SIP/2.0 200 OK');

  // Another tab has the list open: the row goes there too, without a reload.
  const other = await context.newPage();
  await other.goto('/servers');
  await hydrated(other);
  await expect(other.locator(`tr[data-ip="${ip}"]`)).toHaveCount(1);

  await page.getByRole('button', { name: 'Delete Server' }).click();
  await dialog.getByRole('button', { name: 'Delete', exact: true }).click();
  await expect(page).toHaveURL(/\/servers$/);
  await expect(row).toHaveCount(0);
  await expect(page.getByTestId('empty-state')).toBeVisible();
  await expect(sipOptions(ip, 5060, 800)).rejects.toThrow('no SIP answer');
  await expect(other.locator(`tr[data-ip="${ip}"]`)).toHaveCount(0, { timeout: 3000 });
  await expect(other.getByTestId('server-count')).toHaveText('0 servers');

  await page.goto('/account');
  const log = page.locator('table.audit tbody');
  await expect(log.locator('tr', { hasText: 'server.delete' })).toContainText(ip);
  await expect(log.locator('tr', { hasText: 'server.deploy' })).toBeVisible();
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});

test("Delete of a cluster's only Dispatcher is refused with the reason, and the server stays", async ({ page }) => {
  const errors = watchConsole(page);
  const email = uniqueEmail('delete-refused');
  await signUp(page, email);
  await completeChecklist(page, email);
  // The cluster and its two members, through the server functions the pages post to.
  const post = async (endpoint: string, form: Record<string, string>) => {
    const response = await page.request.post(`/api/${endpoint}`, { form, headers: { Accept: 'application/json' } });
    expect(response.status(), await response.text()).toBe(200);
    return response.json();
  };
  const cluster = String(await post('create_cluster', { name: 'Edge' }));
  const dispatcher = await post('deploy_server', { zone: 'eu-london', kind: 'dispatcher', cluster });
  await post('deploy_server', { zone: 'eu-london', kind: 'switch', cluster });

  await page.goto(`/servers/${dispatcher.id}`);
  await hydrated(page);
  await page.getByRole('button', { name: 'Delete Server' }).click();
  await page.getByRole('dialog', { name: 'Confirm delete' }).getByRole('button', { name: 'Delete', exact: true }).click();
  await expect(page.locator('section.delete .form-error')).toContainText(
    `${dispatcher.alias} cannot be deleted: it is the only Dispatcher of cluster Edge, which still has 1 Switch.`,
  );
  await page.screenshot({ path: 'test-results/delete-refused.png', fullPage: true });
  await expect(page).toHaveURL(new RegExp(`/servers/${dispatcher.id}$`));
  expect(await sipOptions(dispatcher.ip)).toBe('SIP/2.0 200 OK');
  await page.goto('/servers');
  await expect(page.locator(`tr[data-ip="${dispatcher.ip}"]`)).toHaveCount(1);
  expect(errors.filter((e) => !e.includes('Failed to load resource'))).toEqual([]);
});
