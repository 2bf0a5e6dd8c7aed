import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as path from 'node:path';
import { expect, type Page } from '@playwright/test';

const root = path.resolve(__dirname, '..', '..');
const port = 3107;

/** How Chromium is started: no sandbox (root in a container), nothing that reaches out to
 *  the internet. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Where the console under test runs and what it is started with. */
export const E2E = {
  baseURL: `http://127.0.0.1:${port}`,
  binary: process.env.SIPFLEET_BIN ?? 'target/debug/sipfleet',
  dataDir: 'target/e2e-data',
  serverEnv: {
    LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
    LEPTOS_SITE_ROOT: 'target/site',
    LEPTOS_RELOAD_PORT: String(port + 1),
    SIPFLEET_DATA_DIR: 'target/e2e-data',
    SIPFLEET_ZONES: 'eu-london=127.0.21.1-127.0.21.200,us-newyork=127.0.22.1-127.0.22.200',
    SIPFLEET_OPERATOR_PASSWORD: 'operator password for e2e',
    SIPFLEET_TRACE_US: '127.0.0.1:19060',
    SIPFLEET_TRACE_EU: '127.0.0.1:19061',
    RUST_LOG: 'info,sqlx=warn',
  },
  operator: { email: 'operator@sipfleet.local', password: 'operator password for e2e' },
};

/** A second console, for what takes time: a trial that ends within a minute (0.0005 days
 *  is 43 s), scheduled work that runs every second and resizes active at once. Its own port, store, zones and trace
 *  collectors. */
const expiryPort = 3117;
export const EXPIRY = {
  ...E2E,
  baseURL: `http://127.0.0.1:${expiryPort}`,
  dataDir: 'target/e2e-expiry-data',
  serverEnv: {
    ...E2E.serverEnv,
    LEPTOS_SITE_ADDR: `127.0.0.1:${expiryPort}`,
    LEPTOS_RELOAD_PORT: String(expiryPort + 1),
    SIPFLEET_DATA_DIR: 'target/e2e-expiry-data',
    SIPFLEET_ZONES: 'eu-london=127.0.23.1-127.0.23.50',
    SIPFLEET_TRACE_US: '127.0.0.1:19062',
    SIPFLEET_TRACE_EU: '127.0.0.1:19063',
    SIPFLEET_TRIAL_DAYS: '0.0005',
    SIPFLEET_SCHEDULE_SECONDS: '1',
    // A resize is active at the next pass (within a second), not after 15 minutes.
    SIPFLEET_RESIZE_ACTIVATION_MINUTES: '0',
  },
};

/** A console under test and how to reach it. */
export type Console = typeof E2E;

/** A unique email for this run. */
export function uniqueEmail(prefix: string): string {
  return `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@e2e.test`;
}

/** Credits an account with the operator's command, against the running console's store. */
export function credit(email: string, dollars: number, console: Console = E2E): void {
  execFileSync(path.join(root, console.binary), ['credit', '--email', email, '--amount', String(dollars)], {
    cwd: root,
    env: { ...process.env, ...console.serverEnv },
    stdio: 'pipe',
  });
}

/** Collects console errors and failed page loads; assert it stays empty. */
export function watchConsole(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  page.on('pageerror', (err) => errors.push(err.message));
  return errors;
}

/** Waits until the wasm has hydrated the page (the app marks <body> when it has). */
export async function hydrated(page: Page): Promise<void> {
  await expect(page.locator('body')).toHaveAttribute('data-hydrated', 'true');
}

/** Signs up through the form and lands on the Servers page. */
export async function signUp(page: Page, email: string): Promise<void> {
  await page.goto('/signup');
  await hydrated(page);
  await page.getByLabel('Company').fill('Acme Telecom');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('a long enough password');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/servers$/);
}

/** Completes the Getting Started checklist: company details and terms through the page,
 *  the first top-up through the operator's command. */
export async function completeChecklist(page: Page, email: string, dollars = 100, console: Console = E2E): Promise<void> {
  await page.goto('/getting-started');
  await hydrated(page);
  await page.getByLabel('Address').fill('1 Dock Road, London');
  await page.getByLabel('Country (two letters)').fill('GB');
  await page.getByRole('button', { name: 'Save company details' }).click();
  await expect(page.locator('li[data-item="company"]')).toHaveClass('done');
  await page.getByRole('button', { name: 'Accept the terms of service' }).click();
  await expect(page.locator('li[data-item="terms"]')).toHaveClass('done');
  credit(email, dollars, console);
  await page.reload();
  await expect(page.getByTestId('checklist-progress')).toHaveText('3 of 3 complete');
}

/** Signs in through the form as the console's operator and lands on the Servers page. */
export async function signInAsOperator(page: Page, console: Console = E2E): Promise<void> {
  await page.goto('/login');
  await hydrated(page);
  await page.getByLabel('Email').fill(console.operator.email);
  await page.getByLabel('Password').fill(console.operator.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/servers$/);
}

/** Creates a SIP user of the signed-in account on the SIP Users page. */
export async function createSipUser(page: Page, username: string, password: string): Promise<void> {
  await page.getByRole('link', { name: 'SIP Users' }).click();
  await hydrated(page);
  // By name: once there are SIP users, the list's search box is labelled by username too.
  await page.locator('input[name="username"]').fill(username);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Create SIP user' }).click();
  await expect(page.locator(`tr[data-user="${username}"]`)).toBeVisible();
}

/** The operator (signed in on `operator`) publishes the next node release. */
export async function publishRelease(operator: Page): Promise<void> {
  await operator.goto('/operator');
  await hydrated(operator);
  const release = operator.getByTestId('node-release');
  const before = Number((await release.textContent())?.match(/Release (\d+)/)?.[1]);
  await operator.getByRole('button', { name: 'Publish release' }).click();
  await expect(release).toContainText(`Release ${before + 1}:`);
}

/** Signs up, completes the checklist and deploys one server; returns its IP. */
export async function deployedServer(page: Page, kind = 'switch', console: Console = E2E): Promise<string> {
  const email = uniqueEmail('srv');
  await signUp(page, email);
  await completeChecklist(page, email, 100, console);
  await page.goto('/servers');
  await hydrated(page);
  await page.getByLabel('Zone').selectOption('eu-london');
  await page.getByLabel('Type').selectOption(kind);
  await page.getByRole('button', { name: 'Deploy' }).click();
  const row = page.locator('table.servers tbody tr').first();
  await expect(row.getByTestId('status')).toHaveText('Running');
  return (await row.getAttribute('data-ip')) ?? '';
}

/** Sends one SIP OPTIONS over UDP and resolves with the status line of the answer. */
export function sipOptions(ip: string, port = 5060, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const callId = `e2e-${Date.now()}`;
    socket.bind(0, '127.0.0.1', () => {
      const local = socket.address();
      const request =
        `OPTIONS sip:ping@${ip}:${port} SIP/2.0\r\n` +
        `Via: SIP/2.0/UDP 127.0.0.1:${local.port};branch=z9hG4bK${callId};rport\r\n` +
        `Max-Forwards: 70\r\nFrom: <sip:e2e@127.0.0.1>;tag=e2e\r\nTo: <sip:ping@${ip}>\r\n` +
        `Call-ID: ${callId}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`;
      socket.send(request, port, ip);
    });
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no SIP answer from ${ip}:${port}`));
    }, timeoutMs);
    socket.on('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg.toString().split('\r\n')[0]);
    });
  });
}

/** Sends one INVITE over UDP and resolves with the status line of the final answer
 *  (provisional ones skipped). */
export function sipInvite(ip: string, port = 5060, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const callId = `e2e-invite-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
    socket.bind(0, '127.0.0.1', () => {
      const local = `127.0.0.1:${socket.address().port}`;
      const request =
        `INVITE sip:bob@${ip}:${port} SIP/2.0\r\n` +
        `Via: SIP/2.0/UDP ${local};branch=z9hG4bK${callId};rport\r\n` +
        `Max-Forwards: 70\r\nFrom: <sip:alice@${local}>;tag=e2e\r\nTo: <sip:bob@${ip}>\r\n` +
        `Call-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@${local}>\r\nContent-Length: 0\r\n\r\n`;
      socket.send(request, port, ip);
    });
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no final SIP answer from ${ip}:${port}`));
    }, timeoutMs);
    socket.on('message', (msg) => {
      const status = msg.toString().split('\r\n')[0];
      if (/^SIP\/2\.0 1\d\d /.test(status)) return;
      clearTimeout(timer);
      socket.close();
      resolve(status);
    });
  });
}

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

/** Waits for the next datagram on `socket`. */
export function next(socket: dgram.Socket, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no SIP answer')), timeoutMs);
    socket.once('message', (msg) => {
      clearTimeout(timer);
      resolve(msg.toString());
    });
  });
}

/** A phone registering `user` at `ip:5060`, answering the MD5 digest challenge. */
export async function register(ip: string, user: string, password: string): Promise<{ status: string; socket: dgram.Socket }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const local = `127.0.0.1:${socket.address().port}`;
  const request = (cseq: number, auth: string) =>
    `REGISTER sip:${ip} SIP/2.0\r\nVia: SIP/2.0/UDP ${local};branch=z9hG4bKe2e${cseq}${Date.now()};rport\r\n` +
    `Max-Forwards: 70\r\nFrom: <sip:${user}@${ip}>;tag=e2e${cseq}\r\nTo: <sip:${user}@${ip}>\r\n` +
    `Call-ID: e2e-reg-${user}\r\nCSeq: ${cseq} REGISTER\r\nContact: <sip:${user}@${local}>\r\nExpires: 600\r\n` +
    `User-Agent: e2e-phone\r\n${auth}Content-Length: 0\r\n\r\n`;
  socket.send(request(1, ''), 5060, ip);
  const challenge = await next(socket);
  const line = challenge.split('\r\n').find((l) => l.startsWith('WWW-Authenticate:') && l.includes('MD5')) ?? '';
  const param = (name: string) => (line.match(new RegExp(`${name}="([^"]*)"`)) ?? [])[1] ?? '';
  const [realm, nonce, opaque] = [param('realm'), param('nonce'), param('opaque')];
  const uri = `sip:${ip}`;
  const response = md5(`${md5(`${user}:${realm}:${password}`)}:${nonce}:00000001:e2ecnonce:auth:${md5(`REGISTER:${uri}`)}`);
  const auth =
    `Authorization: Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", ` +
    `response="${response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="e2ecnonce", opaque="${opaque}"\r\n`;
  socket.send(request(2, auth), 5060, ip);
  const answer = await next(socket);
  return { status: answer.split('\r\n')[0], socket };
}

/** The header values of `message` named `name`. */
export const headers = (message: string, name: string) =>
  message.split('\r\n').filter((l) => l.startsWith(`${name}:`)).map((l) => l.slice(name.length + 1).trim());

/** The callee's answer to `request`: Vias, Record-Route, From, Call-ID and CSeq copied. */
export function answer(request: string, status: string, contact: string): string {
  const copied = request
    .split('\r\n')
    .filter((l) => ['Via:', 'Record-Route:', 'From:', 'Call-ID:', 'CSeq:'].some((h) => l.startsWith(h)))
    .join('\r\n');
  const to = headers(request, 'To')[0];
  const tagged = to.includes(';tag=') ? to : `${to};tag=callee`;
  return `SIP/2.0 ${status}\r\n${copied}\r\nTo: ${tagged}\r\nContact: <sip:bob@${contact}>\r\nContent-Length: 0\r\n\r\n`;
}

/** Every message a socket receives, kept in order until read: unlike `next`, nothing that
 *  arrives between two reads is lost. */
export class Inbox {
  private queue: string[] = [];
  private waiting: ((message: string) => void) | null = null;

  constructor(readonly socket: dgram.Socket) {
    socket.on('message', (msg) => {
      const waiting = this.waiting;
      this.waiting = null;
      if (waiting) waiting(msg.toString());
      else this.queue.push(msg.toString());
    });
  }

  /** The next message that starts with `start`, skipping others (keep-alives, provisional
   *  answers, retransmissions). */
  async expect(start: string, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${start}`);
      const message =
        this.queue.shift() ??
        (await new Promise<string | null>((resolve) => {
          const timer = setTimeout(() => {
            this.waiting = null;
            resolve(null);
          }, left);
          this.waiting = (m) => {
            clearTimeout(timer);
            resolve(m);
          };
        }));
      if (message === null) throw new Error(`no ${start}`);
      if (message.startsWith(start)) return message;
    }
  }
}

/** A carrier's side of calls to `user` at `ip:5060`, from a socket of its own. */
export class Caller {
  readonly inbox: Inbox;
  private constructor(readonly socket: dgram.Socket, readonly ip: string) {
    this.inbox = new Inbox(socket);
  }

  static async open(ip: string): Promise<Caller> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return new Caller(socket, ip);
  }

  get address(): string {
    return `127.0.0.1:${this.socket.address().port}`;
  }

  /** Sends a request of the call `callId` (an INVITE out of dialog, an ACK or BYE inside). */
  send(method: string, cseq: number, callId: string, uri: string, to: string, route = ''): void {
    const me = this.address;
    this.socket.send(
      `${method} ${uri} SIP/2.0\r\nVia: SIP/2.0/UDP ${me};branch=z9hG4bK${method}${cseq}${callId};rport\r\n` +
        `${route ? `Route: ${route}\r\n` : ''}Max-Forwards: 70\r\nFrom: <sip:+15550100@carrier.test>;tag=caller\r\n` +
        `To: ${to}\r\nCall-ID: ${callId}\r\nCSeq: ${cseq} ${method}\r\nContact: <sip:+15550100@${me}>\r\nContent-Length: 0\r\n\r\n`,
      5060,
      this.ip,
    );
  }

  /** Calls `user` and resolves with the status line of the final answer. */
  async invite(user: string, callId: string): Promise<string> {
    this.send('INVITE', 1, callId, `sip:${user}@${this.ip}`, `<sip:${user}@${this.ip}>`);
    for (;;) {
      const answer = await this.inbox.expect('SIP/2.0 ');
      if (!answer.includes(`Call-ID: ${callId}\r\n`) || /^SIP\/2\.0 1\d\d /.test(answer)) continue;
      return answer.split('\r\n')[0];
    }
  }

  close(): void {
    this.socket.close();
  }
}

/** A phone registered at `ip` answering its next call with 200 OK; resolves with the
 *  INVITE it answered. */
export async function pickUp(phone: Inbox, ip: string): Promise<string> {
  const invite = await phone.expect('INVITE ');
  const contact = `127.0.0.1:${phone.socket.address().port}`;
  phone.socket.send(answer(invite, '200 OK', contact), 5060, ip);
  return invite;
}
