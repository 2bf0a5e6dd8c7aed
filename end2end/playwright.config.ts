import { defineConfig } from '@playwright/test';
import { CHROMIUM_ARGS, E2E, EXPIRY } from './tests/support';

// The consoles are the real binary (built by the test command), each on its own port, with a
// fresh store and zones of its own so they never meet a console a developer is running. The
// second one ends trials within a minute, for the expiry spec.
export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    baseURL: E2E.baseURL,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: CHROMIUM_ARGS,
    },
  },
  webServer: [E2E, EXPIRY].map((console) => ({
    command: `rm -rf ${console.dataDir} && exec ${console.binary}`,
    cwd: '..',
    url: console.baseURL,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe' as const,
    env: console.serverEnv,
  })),
});
