// The report dialog: the person picks a reason, and `onReport(reason)` sends it.

import { $ } from "./ui.js";

export class ReportDialog {
  constructor(onReport) {
    this.onReport = onReport;
    this.dialog = $("report-dialog");
    this.form = $("report-form");
  }

  setUp() {
    this.dialog.addEventListener("close", () => {
      if (this.dialog.returnValue !== "send") {
        return;
      }
      const reason = new FormData(this.form).get("reason");
      if (typeof reason === "string" && reason !== "") {
        this.onReport(reason);
      }
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  open() {
    this.form.reset();
    this.dialog.returnValue = "";
    this.dialog.showModal();
  }

  close() {
    if (this.dialog.open) {
      this.dialog.close("cancel");
    }
  }
}
