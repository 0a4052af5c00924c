/**
 * Devices: 'cpu', 'cuda' or 'cuda:N', and their libtorch codes.
 */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export interface DeviceCode {
  type: number;
  index: number;
}

export function parseDevice(d: string): DeviceCode {
  if (d === 'cpu') return { type: 0, index: -1 };
  if (d === 'cuda') return { type: 1, index: -1 };
  const m = /^cuda:(\d+)$/.exec(d);
  if (m) return { type: 1, index: Number(m[1]) };
  throw new TypeError(`unknown device '${d}': use 'cpu', 'cuda' or 'cuda:N'`);
}

export function deviceName(type: number, index: number): Device {
  if (type === 0) return 'cpu';
  if (type === 1) return index >= 0 ? `cuda:${index}` : 'cuda';
  throw new TypeError(`libtorch returned a tensor on unsupported device type ${type}`);
}
