import { Chart, localNow, partialIndex, toSeconds } from "../components/Chart.jsx";
import { Async, Card, Panel, RevenueCard, Table, Tabs } from "../components/ui.jsx";
import { ago, byCurrency, dateTime, duration, label, num, pct } from "../format.js";
import { useApi, useNow } from "../hooks.js";
import { link, setQuery } from "../router.js";
import { sharedQuery } from "../view.js";

const SEGMENTS = ["new", "returning", "active", "dormant", "churned"];
const PAGE_SIZE = 50;

export function Crm({ site, query }) {
  const user = query.get("user");
  return user ? <UserDetail site={site} query={query} userId={user} /> : <UserList site={site} query={query} />;
}

function UserList({ site, query }) {
  const segment = SEGMENTS.includes(query.get("segment")) ? query.get("segment") : null;
  const offset = Math.max(0, Number.parseInt(query.get("offset") || "0", 10) || 0);
  const summary = useApi("/api/v1/crm/summary", { siteId: site.id });
  const users = useApi("/api/v1/crm/users", { siteId: site.id, segment, limit: PAGE_SIZE, offset });
  const now = useNow(30_000);
  return (
    <div class="stack">
      <Async q={summary}>
        {(s) => (
          <>
            <div class="cards">
              <Card name="totalUsers" label="Total users" value={num(s.totalUsers)} raw={s.totalUsers} />
              <Card name="onlineNow" label="Online now" value={num(s.onlineNow)} raw={s.onlineNow} />
              <Card name="newThisWeek" label="New this week" value={num(s.newThisWeek)} raw={s.newThisWeek} />
              <Card name="churnRate" label="Churn rate" value={pct(s.churnRate)} raw={s.churnRate} hint="Active 30–60 days ago, gone since" />
            </div>
            <Panel title="Identified users per day (30 days)">
              <Chart
                label="Identified users per day"
                x={s.usersPerDay.map((p) => toSeconds(p.date))}
                series={[{ label: "Users", values: s.usersPerDay.map((p) => p.users), color: "--c1" }]}
                height={200}
                partial={partialIndex(
                  s.usersPerDay.map((p) => toSeconds(p.date)),
                  localNow(site.timezone),
                  s.usersPerDay.length ? toSeconds(s.usersPerDay[s.usersPerDay.length - 1].date) + 86400 : -Infinity,
                )}
              />
            </Panel>
          </>
        )}
      </Async>
      <Panel
        title="Users"
        actions={
          <Tabs
            label="Segment"
            value={segment || "all"}
            onChange={(key) => setQuery({ segment: key === "all" ? null : key, offset: null })}
            tabs={[["all", "All"], ...SEGMENTS.map((k) => [k, `${k[0].toUpperCase()}${k.slice(1)}${summary.data ? ` ${num(summary.data.segments[k])}` : ""}`])]}
          />
        }
      >
        <Async q={users}>
          {(rows) => (
            <>
              <Table
                caption="Identified users"
                rows={rows}
                rowKey="userId"
                empty={segment ? `No ${segment} users.` : "No identified users yet: call cadlink.identify() in your site."}
                onRow={(row) => setQuery({ user: row.userId })}
                columns={[
                  { key: "userId", label: "User", render: (r) => <a {...link("/crm", withUser(query, r.userId))} onClick={(e) => { e.preventDefault(); setQuery({ user: r.userId }); }}>{r.userId}</a> },
                  { key: "segment", label: "Segment", render: (r) => <span class="badge">{r.segment}</span> },
                  { key: "lastSeen", label: "Last seen", render: (r) => (r.online ? <span class="badge good">online</span> : ago(r.lastSeen, now)) },
                  { key: "sessions30d", label: "Sessions (30 d)", num: true, format: num },
                  { key: "pageViews", label: "Page views", num: true, format: num },
                  { key: "revenueByCurrency", label: "Revenue", num: true, render: (r) => byCurrency(r.revenueByCurrency) },
                  { key: "lastPage", label: "Last page" },
                  { key: "country", label: "Country" },
                  { key: "deviceType", label: "Device" },
                ]}
              />
              <div class="row">
                {offset > 0 && (
                  <button type="button" class="button small" onClick={() => setQuery({ offset: Math.max(0, offset - PAGE_SIZE) || null })}>
                    ← Previous
                  </button>
                )}
                {rows.length === PAGE_SIZE && (
                  <button type="button" class="button small" onClick={() => setQuery({ offset: offset + PAGE_SIZE })}>
                    Next →
                  </button>
                )}
              </div>
            </>
          )}
        </Async>
      </Panel>
    </div>
  );
}

function withUser(query, userId) {
  const q = sharedQuery(query);
  q.set("user", userId);
  return q;
}

function UserDetail({ site, query, userId }) {
  const q = useApi(`/api/v1/crm/users/${encodeURIComponent(userId)}`, { siteId: site.id });
  return (
    <div class="stack" data-testid="user-detail">
      <p>
        <a {...link("/crm", sharedQuery(query))}>← All users</a>
      </p>
      <Async q={q}>
        {(u) => {
          const sessions = u.sessions || [];
          const pages = sessions.reduce((n, s) => n + s.pageViews, 0);
          const traits = Object.entries(u.traits || {});
          return (
            <>
              <h2 class="user-id">{u.userId}</h2>
              <div class="cards">
                <Card name="sessions" label="Sessions" value={num(sessions.length)} raw={sessions.length} />
                <Card name="pageViews" label="Page views" value={num(pages)} raw={pages} />
                <Card name="converted" label="Converted sessions" value={num(sessions.filter((s) => s.converted).length)} />
                {u.revenueByCurrency?.length > 0 && <RevenueCard byCurrency={u.revenueByCurrency} />}
              </div>
              <div class="grid2">
                <Panel title="Traits">
                  {traits.length ? (
                    <dl class="props">
                      {traits.map(([k, v]) => (
                        <>
                          <dt>{k}</dt>
                          <dd>{typeof v === "object" ? JSON.stringify(v) : String(v)}</dd>
                        </>
                      ))}
                    </dl>
                  ) : (
                    <p class="muted">No traits were sent with identify().</p>
                  )}
                </Panel>
                <Panel title="Latest session">
                  {sessions[0] ? (
                    <dl class="props">
                      <dt>Started</dt>
                      <dd>
                        {dateTime(sessions[0].startedAt, site.timezone)} <span class="muted">({site.timezone})</span>
                      </dd>
                      <dt>Source</dt>
                      <dd>{label(sessions[0].source)} ({label(sessions[0].channel)})</dd>
                      <dt>Device</dt>
                      <dd>{label(sessions[0].deviceType)}</dd>
                      <dt>Country</dt>
                      <dd>{label(sessions[0].country)}</dd>
                    </dl>
                  ) : (
                    <p class="muted">No sessions in the stored history.</p>
                  )}
                </Panel>
              </div>
              <Panel title="Sessions and pages visited" actions={<span class="muted">Times in {site.timezone}</span>}>
                <div class="sessions">
                  {sessions.map((s) => (
                    <div class="session" data-session={s.sessionKey}>
                      <div class="row">
                        <strong>{dateTime(s.startedAt, site.timezone)}</strong>
                        <span class="muted">{duration(s.durationSeconds)}</span>
                        <span class="muted">
                          {num(s.pageViews)} {s.pageViews === 1 ? "page" : "pages"}
                        </span>
                        <span class="muted">{label(s.source)}</span>
                        <span class="muted">
                          {label(s.deviceType)} · {label(s.country)}
                        </span>
                        {s.converted && (
                          <span class="badge good">
                            converted{s.revenueByCurrency?.length ? ` · ${byCurrency(s.revenueByCurrency)}` : ""}
                          </span>
                        )}
                      </div>
                      {s.pages.length > 0 && (
                        <ol>
                          {s.pages.map((p) => (
                            <li>
                              <span class="page-path">{p.path}</span> {p.title && <span class="muted">— {p.title}</span>}
                            </li>
                          ))}
                        </ol>
                      )}
                    </div>
                  ))}
                  {sessions.length === 0 && <p class="muted">No sessions.</p>}
                </div>
              </Panel>
            </>
          );
        }}
      </Async>
    </div>
  );
}
