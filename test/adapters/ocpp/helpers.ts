import ocpp from '../../../adapters/ocpp/index.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import type { AdapterType } from '../../../runtime/adapter.js';
import { ChargePointSimulator, type SimulatorOptions } from '../../../adapters/ocpp/simulator.js';
import type { Teardown } from '../../helpers/teardown.js';

export interface OcppGateway extends TestGateway {
  wsUrl: string;
  status(): Promise<{ state: string; info?: { counters: Record<string, unknown>; plan?: unknown }; message?: string }>;
  sim(options: Omit<SimulatorOptions, 'endpoint'>): ChargePointSimulator;
}

/** A real gateway with one `ocpp` adapter instance (id `chargers`) plus any extra adapters. */
export async function startOcppGateway(
  t: Teardown,
  options: Record<string, unknown>,
  extra: { adapters?: unknown[]; dataDir?: string } = {},
): Promise<OcppGateway> {
  const gw = await startTestGateway(
    t,
    { adapters: [...(extra.adapters ?? []), { id: 'chargers', type: 'ocpp', ...options }] },
    { types: [ocpp as unknown as AdapterType], dataDir: extra.dataDir },
  );
  const wsUrl = gw.httpUrl.replace(/^http/, 'ws') + '/ocpp';
  const sims: ChargePointSimulator[] = [];
  t.teardown(async () => {
    for (const s of sims) await s.close();
  });
  return {
    ...gw,
    wsUrl,
    async status() {
      const res = await fetch(`${gw.httpUrl}/api/adapters`);
      const body = (await res.json()) as { items: Array<{ id: string; state: string; info?: never; message?: string }> };
      return body.items.find((a) => a.id === 'chargers')!;
    },
    sim(simOptions) {
      const s = new ChargePointSimulator({ endpoint: wsUrl, ...simOptions });
      sims.push(s);
      return s;
    },
  };
}

export async function getJson<T = Record<string, unknown>>(url: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

export function postJson<T = Record<string, unknown>>(url: string, body: unknown): Promise<{ status: number; body: T }> {
  return getJson<T>(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}
