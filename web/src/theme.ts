/**
 * The colour theme: the system's preference (`prefers-color-scheme`) unless the toggle in the top
 * bar chose otherwise. The choice is kept in localStorage; choosing what the system prefers
 * anyway forgets it, so the page follows the system again.
 */

import { redrawCharts } from "./chart.js";
import { byId } from "./dom.js";
import { load, save } from "./prefs.js";

type Theme = "light" | "dark";

function isTheme(value: unknown): value is Theme | "system" {
  return value === "light" || value === "dark" || value === "system";
}

const systemLight = window.matchMedia("(prefers-color-scheme: light)");

function systemTheme(): Theme {
  return systemLight.matches ? "light" : "dark";
}

/** Sets up the toggle and applies the stored choice. */
export function initTheme(): void {
  const button = byId<HTMLButtonElement>("theme-toggle");
  let chosen = load<Theme | "system">("theme", "system", isTheme);
  const apply = () => {
    const root = document.documentElement;
    if (chosen === "system") {
      delete root.dataset.theme;
    } else {
      root.dataset.theme = chosen;
    }
    const effective = chosen === "system" ? systemTheme() : chosen;
    const other = effective === "light" ? "dark" : "light";
    button.title = `Switch to the ${other} theme`;
    button.setAttribute("aria-label", button.title);
    button.dataset.effective = effective;
    redrawCharts();
  };
  button.addEventListener("click", () => {
    const effective = chosen === "system" ? systemTheme() : chosen;
    const next: Theme = effective === "light" ? "dark" : "light";
    chosen = next === systemTheme() ? "system" : next;
    save("theme", chosen);
    apply();
  });
  systemLight.addEventListener("change", apply);
  apply();
}
