import { expect, test } from '@playwright/test';
import { completeChecklist, deployedServer, hydrated, signUp, uniqueEmail, watchConsole } from './support';

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

test('the list pages 60 servers 50 at a time, Next and Previous, and pages what a filter leaves', async ({ page }) => {
  test.setTimeout(120_000);
  const errors = watchConsole(page);
  const email = uniqueEmail('paging');
  await signUp(page, email);
  // Deploying the 60th server needs $20 + $20 × 59.
  await completeChecklist(page, email, 1300);
  // The servers are deployed through the same server function the Deploy form posts to,
  // with the page's session: 52 Switches in London, 8 Dispatchers in New York.
  const deploy = async (zone: string, kind: string) => {
    const response = await page.request.post('/api/deploy_server', {
      form: { zone, kind },
      headers: { Accept: 'application/json' },
    });
    expect(response.status(), await response.text()).toBe(200);
  };
  for (let i = 0; i < 52; i++) await deploy('eu-london', 'switch');
  for (let i = 0; i < 8; i++) await deploy('us-newyork', 'dispatcher');

  await page.goto('/servers');
  await hydrated(page);
  const rows = page.locator('table.servers tbody tr');
  const pager = page.getByRole('navigation', { name: 'Pages' });
  const previous = pager.getByRole('button', { name: 'Previous', exact: true });
  const next = pager.getByRole('button', { name: 'Next', exact: true });
  const where = page.getByTestId('page');
  // The buttons say only their names: nothing of the view's source leaks into the page.
  await expect(pager).toHaveText(/^\s*Previous\s*Page 1 of 2\s*Next\s*$/);
  await expect(page.locator('body')).not.toContainText('page.update');

  await expect(page.getByTestId('server-count')).toHaveText('60 servers');
  await expect(rows).toHaveCount(50);
  await expect(previous).toBeDisabled();
  await expect(next).toBeEnabled();
  // Sorted by IP, London's 127.0.21.x come first: the first page is all Switches.
  await expect(rows.filter({ hasText: 'Dispatcher' })).toHaveCount(0);

  await next.click();
  await expect(where).toHaveText('Page 2 of 2');
  await expect(rows).toHaveCount(10);
  await expect(rows.filter({ hasText: 'Dispatcher' })).toHaveCount(8);
  await expect(next).toBeDisabled();
  await expect(previous).toBeEnabled();

  await previous.click();
  await expect(where).toHaveText('Page 1 of 2');
  await expect(rows).toHaveCount(50);
  await expect(previous).toBeDisabled();

  // A filter goes back to its first page; what it leaves pages the same way.
  await next.click();
  await expect(where).toHaveText('Page 2 of 2');
  await page.getByLabel('Filter by type').selectOption('switch');
  await expect(page.getByTestId('server-count')).toHaveText('52 servers');
  await expect(where).toHaveText('Page 1 of 2');
  await expect(rows).toHaveCount(50);
  await next.click();
  await expect(where).toHaveText('Page 2 of 2');
  await expect(rows).toHaveCount(2);
  await expect(rows.filter({ hasText: 'Switch' })).toHaveCount(2);
  await expect(next).toBeDisabled();

  await page.getByLabel('Filter by type').selectOption('dispatcher');
  await expect(page.getByTestId('server-count')).toHaveText('8 servers');
  await expect(where).toHaveText('Page 1 of 1');
  await expect(rows).toHaveCount(8);
  await expect(previous).toBeDisabled();
  await expect(next).toBeDisabled();

  await page.getByLabel('Filter by type').selectOption({ label: 'All' });
  await page.getByLabel('Filter by zone').selectOption('eu-london');
  await expect(page.getByTestId('server-count')).toHaveText('52 servers');
  await next.click();
  await expect(rows).toHaveCount(2);
  await page.screenshot({ path: 'test-results/servers-paging.png', fullPage: true });
  expect(errors).toEqual([]);
});
