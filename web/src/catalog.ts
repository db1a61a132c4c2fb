/** The catalog of built-in sources (`GET /api/sources`, see docs/sources.md). */

export interface SourceInfo {
  enabled: boolean;
  simulated?: boolean;
  interval_ms?: number;
}

export interface SymbolInfo {
  symbol: string;
  name: string;
  channel: string;
}

export interface StopInfo {
  name: string;
  lat: number;
  lon: number;
}

export interface RouteInfo {
  id: string;
  name: string;
  color: string;
  channel: string;
  /** `[lat, lon]` pairs. */
  path: [number, number][];
  stops: StopInfo[];
}

export interface StationInfo {
  id: string;
  name: string;
  channel: string;
}

export interface SensorInfo {
  id: string;
  name: string;
  channel: string;
  rate_hz?: number;
}

export interface Catalog {
  system?: SourceInfo & { channel?: string };
  stocks?: SourceInfo & { symbols?: SymbolInfo[] };
  transit?: SourceInfo & { routes?: RouteInfo[] };
  weather?: SourceInfo & { alerts_channel?: string; stations?: StationInfo[] };
  sensors?: SourceInfo & { sensors?: SensorInfo[] };
}

/** The catalog, or `null` when the server does not answer with one. */
export async function fetchCatalog(): Promise<Catalog | null> {
  try {
    const response = await fetch(`${location.origin}/api/sources`, { headers: { accept: "application/json" }, cache: "no-store" });
    if (!response.ok) {
      return null;
    }
    const body: unknown = await response.json();
    return body !== null && typeof body === "object" ? (body as Catalog) : null;
  } catch {
    return null;
  }
}

/** Why a page has nothing to show, or `null` when its source runs. */
export function unavailable(catalog: Catalog | null, source: SourceInfo | undefined, what: string): { title: string; text: string } | null {
  if (!catalog) {
    return {
      title: "The source catalog is unavailable",
      text: `The server did not answer GET /api/sources, so the ${what} cannot be drawn. Reload the page to try again.`,
    };
  }
  if (!source || source.enabled === false) {
    return {
      title: `The ${what} source is switched off`,
      text: `Enable it in the [sources] section of the server's configuration (and do not pass --no-sources) to see live data here.`,
    };
  }
  return null;
}
