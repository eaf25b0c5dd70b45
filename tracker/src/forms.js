// form_start on the first focus inside a form, form_submit, and form_abandon when a page view
// ends with a started form never submitted. Field values are never read.
import { auto } from "./config.js";
import { track } from "./core.js";
import { onEnd, onStart } from "./pageviews.js";
import { doc, listen, w } from "./util.js";

let forms = new Map(); // form → submitted (0 or 1)

// getAttribute, not form.id / form.name: a field named "id" or "name" shadows those properties.
const formId = (f) =>
  f.getAttribute("id") || f.getAttribute("name") || f.getAttribute("action") || "form" + [].indexOf.call(doc.forms, f);

export function startForms() {
  if (!auto("forms")) return;
  onStart(() => (forms = new Map()));
  onEnd((where) => forms.forEach((sent, f) => sent || track("form_abandon", { formId: formId(f) }, 0, where)));
  listen(w, "focusin", (e) => {
    const f = e.target.form;
    if (f && !forms.has(f)) {
      forms.set(f, 0);
      track("form_start", { formId: formId(f) });
    }
  }, 1);
  listen(w, "submit", (e) => {
    forms.set(e.target, 1);
    track("form_submit", { formId: formId(e.target) });
  }, 1);
}
