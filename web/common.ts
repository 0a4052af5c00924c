/**
 * What both pages share in the browser: the settings kept in localStorage (API key, sampling,
 * theme), the Authorization header they imply, JSON requests with the API's error messages, and the
 * light/dark theme. It knows the browser and the API's error shape; not the pages' layout.
 */

export interface Settings {
  /** Sent as "Authorization: Bearer …" when the server has API keys on; empty: none. */
  apiKey: string;
  temperature: number;
  top_p: number;
  max_tokens: number;
  /** null: a new random stream each request. */
  seed: number | null;
  /** A system message put before each conversation; empty: none. */
  system: string;
  theme: 'auto' | 'light' | 'dark';
}

export const SETTINGS_KEY = 'tinyseek.settings';

export const DEFAULT_SETTINGS: Settings = { apiKey: '', temperature: 0.6, top_p: 0.95, max_tokens: 512, seed: null, system: '', theme: 'auto' };

const num = (v: unknown, fallback: number): number => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);

export function loadSettings(): Settings {
  let raw: Record<string, unknown> = {};
  try {
    const v: unknown = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? '{}');
    if (v && typeof v === 'object' && !Array.isArray(v)) raw = v as Record<string, unknown>;
  } catch {
    // unreadable settings: start from the defaults
  }
  const d = DEFAULT_SETTINGS;
  return {
    apiKey: typeof raw.apiKey === 'string' ? raw.apiKey : d.apiKey,
    temperature: num(raw.temperature, d.temperature),
    top_p: num(raw.top_p, d.top_p),
    max_tokens: Math.max(1, Math.round(num(raw.max_tokens, d.max_tokens))),
    seed: typeof raw.seed === 'number' && Number.isInteger(raw.seed) ? raw.seed : null,
    system: typeof raw.system === 'string' ? raw.system : d.system,
    theme: raw.theme === 'light' || raw.theme === 'dark' ? raw.theme : 'auto',
  };
}

export function saveSettings(s: Settings): void {
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(s));
}

export function authHeaders(s: Settings): Record<string, string> {
  return s.apiKey ? { authorization: `Bearer ${s.apiKey}` } : {};
}

/** The message of an API error body ({"error": {"message"}}), or the status line. */
export async function errorMessage(res: Response): Promise<string> {
  try {
    const body: unknown = await res.json();
    const m = (body as { error?: { message?: unknown } })?.error?.message;
    if (typeof m === 'string') return res.status === 401 ? `${m} — set the API key under Settings on the chat page (/)` : m;
  } catch {
    // not JSON
  }
  return `HTTP ${res.status} ${res.statusText}`;
}

export async function getJson<T>(url: string, s: Settings): Promise<T> {
  const res = await fetch(url, { headers: authHeaders(s) });
  if (!res.ok) throw new Error(await errorMessage(res));
  return (await res.json()) as T;
}

/** Applies the theme: "auto" follows the system (prefers-color-scheme, in style.css). */
export function applyTheme(theme: Settings['theme']): void {
  if (theme === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
}

/** The theme after "auto" is resolved, for a toggle button. */
export function effectiveTheme(theme: Settings['theme']): 'light' | 'dark' {
  if (theme !== 'auto') return theme;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

/** document.getElementById that fails loudly: the page and its script disagree otherwise. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
}

/** An element with a class and text (text, never markup). */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
