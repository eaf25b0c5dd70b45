import { useEffect, useRef, useState } from "preact/hooks";
import { accessToken, api, url } from "../api.js";
import { Card, ErrorBox, Loading, Panel, Table } from "../components/ui.jsx";
import { ago, label, num, pct } from "../format.js";
import { useNow } from "../hooks.js";

const POLL_MS = 5000;

/**
 * The realtime report for `siteId`, pushed over Server-Sent Events. When the stream fails it
 * fetches a fresh token and reconnects with back-off, and meanwhile polls the report.
 */
export function useLive(siteId) {
  const [state, setState] = useState({ data: null, status: "connecting", error: null, updatedAt: 0 });
  const stopped = useRef(false);
  useEffect(() => {
    stopped.current = false;
    let source = null;
    let retryTimer = 0;
    let pollTimer = 0;
    let attempts = 0;
    const put = (data, status) => setState({ data, status, error: null, updatedAt: Date.now() });
    const stop = () => {
      stopped.current = true;
      source?.close();
      clearTimeout(retryTimer);
      clearInterval(pollTimer);
    };
    const poll = async () => {
      try {
        const { data } = await api("/api/v1/analytics/realtime", { siteId });
        if (!stopped.current) setState((s) => ({ ...s, data, error: null, updatedAt: Date.now() }));
      } catch (error) {
        if (stopped.current) return;
        // Refused for this account's role: asking again (or reconnecting) cannot succeed.
        if (error.status === 403) {
          stop();
          setState((s) => ({ ...s, data: null, status: "forbidden", error }));
        } else setState((s) => ({ ...s, error }));
      }
    };
    const connect = async () => {
      let token;
      try {
        token = await accessToken();
      } catch (error) {
        setState((s) => ({ ...s, status: "offline", error }));
        return;
      }
      if (stopped.current) return;
      source = new EventSource(url("/api/v1/analytics/live", { siteId, token }));
      source.addEventListener("realtime", (e) => {
        attempts = 0;
        clearInterval(pollTimer);
        pollTimer = 0;
        put(JSON.parse(e.data), "live");
      });
      source.addEventListener("error", () => {
        if (stopped.current) return;
        if (source.readyState !== EventSource.CLOSED) {
          setState((s) => ({ ...s, status: "reconnecting" }));
          return; // the browser retries by itself
        }
        // Refused (expired token, no live route): poll while reconnecting with a new token.
        source.close();
        setState((s) => ({ ...s, status: "polling" }));
        if (!pollTimer) {
          poll();
          pollTimer = setInterval(poll, POLL_MS);
        }
        attempts += 1;
        retryTimer = setTimeout(connect, Math.min(30_000, 1000 * 2 ** attempts));
      });
    };
    connect();
    return stop;
  }, [siteId]);
  return state;
}

const STATUS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  polling: "Updating every 5 s (live stream unavailable)",
  offline: "Offline",
  forbidden: "Stopped",
};

export function Realtime({ site }) {
  const live = useLive(site.id);
  const now = useNow(1000);
  const d = live.data;
  return (
    <div class="stack">
      <p class="muted" aria-live="polite">
        <span class={live.status === "live" ? "live-dot on" : "live-dot"} aria-hidden="true" />
        <span data-testid="live-status">{STATUS[live.status]}</span>
        {live.updatedAt ? ` · updated ${ago(live.updatedAt, now)}` : ""}
      </p>
      {live.error && !d && <ErrorBox error={live.error} />}
      {!d && !live.error && <Loading />}
      {d && (
        <>
          <div class="cards">
            <Card name="activeUsers" label="Visitors now (5 min)" value={num(d.activeUsers)} raw={d.activeUsers} />
            <Card name="pageViewsLastMinute" label="Page views, last minute" value={num(d.pageViewsLastMinute)} raw={d.pageViewsLastMinute} />
            <Card name="clicksLastMinute" label="Clicks, last minute" value={num(d.clicksLastMinute)} raw={d.clicksLastMinute} />
            <Card name="conversionRate" label="Conversion rate today" value={pct(d.conversionRate)} raw={d.conversionRate} />
          </div>
          <Panel title={`Visitors online now (${num(d.visitors.length)})`}>
            <Table
              caption="Visitors online now"
              empty="Nobody is on the site right now. Visitors appear here within a second of arriving."
              rows={d.visitors}
              rowKey="visitorId"
              columns={[
                { key: "currentPage", label: "Current page" },
                { key: "source", label: "Source" },
                { key: "country", label: "Country" },
                { key: "deviceType", label: "Device" },
                { key: "browser", label: "Browser" },
                { key: "lastSeen", label: "Last seen", num: true, format: (v) => ago(v, now) },
              ]}
            />
          </Panel>
        </>
      )}
    </div>
  );
}
