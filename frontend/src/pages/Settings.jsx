import { useState } from "preact/hooks";
import { api } from "../api.js";
import { Async, Panel } from "../components/ui.jsx";
import { dateTime } from "../format.js";
import { useApi } from "../hooks.js";
import { isAdmin, readsReports, role } from "../roles.js";

function CopyButton({ text }) {
  const [copied, setCopied] = useState("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied("Copied");
    } catch {
      // No clipboard permission (or http://): select the text so Ctrl+C works.
      const pre = document.querySelector("[data-testid=snippet]");
      const range = document.createRange();
      range.selectNodeContents(pre);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      setCopied("Selected: press Ctrl+C");
    }
    setTimeout(() => setCopied(""), 2500);
  };
  return (
    <button type="button" class="button" onClick={copy} aria-live="polite">
      {copied || "Copy"}
    </button>
  );
}

export function Settings({ site, reloadSites }) {
  const admin = isAdmin();
  const snippet = useApi(`/api/v1/sites/${encodeURIComponent(site.id)}/snippet`, {});
  return (
    <div class="stack">
      <Panel title="Install the tracker">
        <p>
          Paste this tag into the <code>&lt;head&gt;</code> of every page of <strong>{site.domain}</strong>. Page views, clicks, scrolls, forms, errors and
          web vitals are collected without cookies; product and affiliate events come from <code>data-track</code> attributes or{" "}
          <code>cadlink.trackProductView()</code> and <code>cadlink.trackAffiliateClick()</code>.
          {readsReports() && (
            <>
              {" "}Visits show on the <a href={`/realtime?site=${encodeURIComponent(site.id)}`}>realtime page</a> within a second.
            </>
          )}
        </p>
        <Async q={snippet}>
          {(s) => (
            <div class="snippet">
              <pre data-testid="snippet">{s.snippet}</pre>
              <CopyButton text={s.snippet} />
            </div>
          )}
        </Async>
        <p class="muted">
          Single-page apps are tracked automatically (history changes). Identify signed-in users with <code>cadlink.identify("user-id", {"{"} plan: "pro" {"}"})</code>; see
          docs/tracker.md for consent, custom events and the React binding.
        </p>
      </Panel>
      {admin ? (
        // Keyed by site: the form is filled once, from the site it edits.
        <EditSite key={site.id} site={site} onSaved={reloadSites} />
      ) : (
        <SiteDetails site={site} />
      )}
      {admin && <NewSite />}
    </div>
  );
}

/** The site's settings for an account that may not change them (only ADMIN may). */
function SiteDetails({ site }) {
  const r = role();
  return (
    <Panel title="Site">
      <div class="stack" data-testid="site-details">
        <p class="muted">
          Only administrators can change sites or add one{r ? `; your account is ${r === "ANALYST" ? "an analyst" : "a " + r.toLowerCase()}` : ""}.
        </p>
        <dl class="props">
          <dt>Name</dt>
          <dd>{site.name || "–"}</dd>
          <dt>Domain</dt>
          <dd>{site.domain}</dd>
          <dt>Other allowed origins</dt>
          <dd>{site.allowedOrigins.length ? site.allowedOrigins.join(", ") : "–"}</dd>
          <dt>Time zone</dt>
          <dd>{site.timezone}</dd>
          <dt>Do Not Track and Global Privacy Control</dt>
          <dd>{site.respectDnt ? "respected" : "ignored"}</dd>
          <dt>Site id</dt>
          <dd>
            <code>{site.id}</code>
          </dd>
          <dt>Created</dt>
          <dd>
            {dateTime(Date.parse(site.createdAt), site.timezone)} ({site.timezone})
          </dd>
        </dl>
      </div>
    </Panel>
  );
}

function EditSite({ site, onSaved }) {
  const [form, setForm] = useState({
    name: site.name || "",
    domain: site.domain,
    origins: site.allowedOrigins.join(", "),
    timezone: site.timezone,
    respectDnt: site.respectDnt,
  });
  const [status, setStatus] = useState({ busy: false, error: null, saved: false });
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.type === "checkbox" ? e.currentTarget.checked : e.currentTarget.value });
  const submit = async (e) => {
    e.preventDefault();
    setStatus({ busy: true, error: null, saved: false });
    try {
      await api(`/api/v1/sites/${encodeURIComponent(site.id)}`, null, {
        method: "PATCH",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          name: form.name.trim() || null,
          domain: form.domain.trim(),
          allowedOrigins: form.origins.split(/[\s,]+/).filter(Boolean),
          timezone: form.timezone.trim(),
          respectDnt: form.respectDnt,
        }),
      });
      setStatus({ busy: false, error: null, saved: true });
      onSaved?.(); // the site switcher, date ranges and reports read the site list
    } catch (error) {
      setStatus({ busy: false, error, saved: false });
    }
  };
  return (
    <Panel title="Site">
      <form class="stack" onSubmit={submit} style={{ maxWidth: "520px" }} data-testid="edit-site">
        {status.error && (
          <p class="state error" role="alert">
            {status.error.status === 403 ? "Only administrators can change sites." : status.error.message}
          </p>
        )}
        {status.saved && (
          <p class="state" role="status">
            Saved. Reports use the new time zone from now on.
          </p>
        )}
        <p class="muted">
          Site id <code>{site.id}</code>, created {dateTime(Date.parse(site.createdAt), site.timezone)} ({site.timezone}).
        </p>
        <label class="stack" style={{ gap: "4px" }}>
          Name
          <input value={form.name} onInput={set("name")} />
        </label>
        <label class="stack" style={{ gap: "4px" }}>
          Domain
          <input required value={form.domain} onInput={set("domain")} />
        </label>
        <label class="stack" style={{ gap: "4px" }}>
          Other allowed origins (comma-separated)
          <input placeholder="https://www.example.com" value={form.origins} onInput={set("origins")} />
        </label>
        <label class="stack" style={{ gap: "4px" }}>
          Time zone
          <input required value={form.timezone} onInput={set("timezone")} />
        </label>
        <label>
          <input type="checkbox" checked={form.respectDnt} onChange={set("respectDnt")} /> Respect Do Not Track and Global Privacy Control
        </label>
        <div>
          <button type="submit" class="button primary" disabled={status.busy}>
            {status.busy ? "Saving…" : "Save"}
          </button>
        </div>
      </form>
    </Panel>
  );
}

function NewSite() {
  const [form, setForm] = useState({ domain: "", name: "", origins: "", timezone: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" });
  const [status, setStatus] = useState({ busy: false, error: null });
  const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
  const submit = async (e) => {
    e.preventDefault();
    setStatus({ busy: true, error: null });
    try {
      const origins = form.origins.split(/[\s,]+/).filter(Boolean);
      const { data } = await api("/api/v1/sites", null, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ domain: form.domain.trim(), name: form.name.trim() || null, allowedOrigins: origins, timezone: form.timezone }),
      });
      setStatus({ busy: false, error: null });
      // A full reload refreshes the site list everywhere.
      location.assign(`/settings?site=${encodeURIComponent(data.id)}`);
    } catch (error) {
      setStatus({ busy: false, error });
    }
  };
  return (
    <Panel title="Add a site">
      <form class="stack" onSubmit={submit} style={{ maxWidth: "520px" }}>
        {status.error && (
          <p class="state error" role="alert">
            {status.error.status === 403 ? "Only administrators can add sites." : status.error.message}
          </p>
        )}
        <label class="stack" style={{ gap: "4px" }}>
          Domain
          <input required placeholder="shop.example.com" value={form.domain} onInput={set("domain")} />
        </label>
        <label class="stack" style={{ gap: "4px" }}>
          Name
          <input placeholder="My shop" value={form.name} onInput={set("name")} />
        </label>
        <label class="stack" style={{ gap: "4px" }}>
          Other allowed origins (comma-separated)
          <input placeholder="https://www.example.com" value={form.origins} onInput={set("origins")} />
        </label>
        <label class="stack" style={{ gap: "4px" }}>
          Time zone
          <input value={form.timezone} onInput={set("timezone")} />
        </label>
        <div>
          <button type="submit" class="button primary" disabled={status.busy}>
            {status.busy ? "Adding…" : "Add site"}
          </button>
        </div>
      </form>
    </Panel>
  );
}
