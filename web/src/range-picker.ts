/** The range picker of a page's charts (5 min, 1 h, 24 h), remembered per page, and its note on what the server holds. */

import { h, setText } from "./dom.js";
import { load, save } from "./prefs.js";
import { DEFAULT_RANGE, RANGES, type Range, type RangeId, isRangeId, range } from "./series.js";

export class RangePicker {
  /** `[data-range-picker="{key}"]`: the buttons, then the note. */
  readonly el: HTMLElement;
  private readonly buttons: HTMLButtonElement[];
  private readonly noteEl: HTMLElement;
  private picked: RangeId;

  /** `key` names the preference (`range.{key}`); `onPick` runs when the user picks another range. */
  constructor(
    private readonly key: string,
    onPick: (range: Range) => void,
  ) {
    this.picked = load(`range.${key}`, DEFAULT_RANGE, isRangeId);
    this.buttons = RANGES.map((r) => {
      const button = h("button", { type: "button", class: "range-button", "data-range": r.id, "aria-pressed": r.id === this.picked ? "true" : "false", title: `The last ${r.label}` }, r.label);
      button.addEventListener("click", () => {
        if (r.id !== this.picked) {
          this.pick(r.id);
          onPick(r);
        }
      });
      return button;
    });
    this.noteEl = h("p", { class: "range-note muted", "data-coverage-note": "", role: "status" });
    this.noteEl.hidden = true;
    this.el = h("div", { class: "range-bar", "data-range-picker": key }, h("div", { class: "range-buttons", role: "group", "aria-label": "Time range" }, ...this.buttons), this.noteEl);
  }

  get range(): Range {
    return range(this.picked);
  }

  /** Says what the charts cannot show (`null`: nothing to say). */
  setNote(text: string | null): void {
    setText(this.noteEl, text ?? "");
    this.noteEl.hidden = text === null;
  }

  private pick(id: RangeId): void {
    this.picked = id;
    save(`range.${this.key}`, id);
    for (const button of this.buttons) {
      button.setAttribute("aria-pressed", button.dataset.range === id ? "true" : "false");
    }
  }
}
