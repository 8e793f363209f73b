export async function getJson<T = Record<string, unknown>>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

export async function postJson<T = Record<string, unknown>>(url: string, body: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as T };
}

export async function latest(httpUrl: string, id: string): Promise<{ v: unknown; t: number; q?: string } | null> {
  const { status, body } = await getJson<{ latest: { v: unknown; t: number; q?: string } | null }>(`${httpUrl}/api/datapoints/${id}`);
  return status === 200 ? body.latest : null;
}

export async function values(httpUrl: string, id: string, from = 0): Promise<Array<{ v: unknown; t: number; q?: string }>> {
  const { body } = await getJson<{ values?: Array<{ v: unknown; t: number; q?: string }> }>(`${httpUrl}/api/datapoints/${id}/values?from=${from}&limit=10000`);
  return body.values ?? [];
}

/** A device's entry in the Modbus adapter's status info, as the tests read it (adapters/modbus/device-options.ts DeviceStatus). */
export interface ModbusDeviceStatus {
  state: string;
  code?: string;
  lastError?: string;
  retryInMs: number;
  requests: number;
  requestsPerCycle: number;
  badPoints?: string[];
  identity?: Record<string, string>;
}

/** The Modbus adapter's entry in GET /api/adapters. */
export interface ModbusAdapterStatus {
  id: string;
  state: string;
  degraded?: boolean;
  message?: string;
  info: { devices: Record<string, ModbusDeviceStatus>; buses: Record<string, { error?: string }> };
}

/** The adapter's entry (the tests ask for one that runs). */
export async function adapterStatus(httpUrl: string, id: string): Promise<ModbusAdapterStatus> {
  const { body } = await getJson<{ items: ModbusAdapterStatus[] }>(`${httpUrl}/api/adapters`);
  return body.items.find((s) => s.id === id)!;
}
