// The dashboard shell: sign-in gate, site list, navigation, and the page for the URL's path.
import { render } from "preact";
import { useEffect } from "preact/hooks";
import { signOut, signedIn } from "./api.js";
import { DateRange, FilterBar, SiteSwitcher } from "./components/Controls.jsx";
import { ErrorBox, Forbidden, Loading } from "./components/ui.jsx";
import { useApi } from "./hooks.js";
import { Behaviour } from "./pages/Behaviour.jsx";
import { Crm } from "./pages/Crm.jsx";
import { Exports } from "./pages/Exports.jsx";
import { Funnels } from "./pages/Funnels.jsx";
import { Login } from "./pages/Login.jsx";
import { Overview } from "./pages/Overview.jsx";
import { Products } from "./pages/Products.jsx";
import { Realtime } from "./pages/Realtime.jsx";
import { Settings } from "./pages/Settings.jsx";
import { readsReports } from "./roles.js";
import { link, navigate, setQuery, useRoute } from "./router.js";
import "./styles.css";
import { sharedQuery } from "./view.js";

// path → [title, component, shows the date range, shows filters, a report (ADMIN, ANALYST)]
const PAGES = {
  "/": ["Overview", Overview, true, true, true],
  "/realtime": ["Realtime", Realtime, false, false, true],
  "/funnels": ["Funnels", Funnels, true, true, true],
  "/products": ["Products", Products, true, true, true],
  "/behaviour": ["Behaviour", Behaviour, true, true, true],
  "/crm": ["CRM", Crm, false, false, true],
  "/exports": ["Exports", Exports, true, true, true],
  "/settings": ["Site settings", Settings, false, false, false],
};

function App() {
  const route = useRoute();
  const authed = signedIn();
  useEffect(() => {
    if (!authed && route.path !== "/login") {
      const next = route.path + location.search;
      navigate("/login", next === "/" ? {} : { next }, { replace: true });
    }
  }, [authed, route.path]);
  if (route.path === "/login" || !authed) return <Login query={route.query} />;
  return <Shell route={route} />;
}

function Shell({ route }) {
  const sitesQ = useApi("/api/v1/sites", {});
  const sites = sitesQ.data;
  const wanted = route.query.get("site") || localStorage.getItem("cadlink.site");
  const site = sites && (sites.find((s) => s.id === wanted) || sites[0]);
  useEffect(() => {
    if (site && route.query.get("site") !== site.id) setQuery({ site: site.id }, { replace: true });
  }, [site?.id, route.query.get("site")]);
  const [title, Page, pageDated, pageFiltered, report] = PAGES[route.path] || ["Not found", NotFound, false, false, false];
  // A viewer's report pages would only collect 403s: say why instead, and ask nothing.
  const refused = report && !readsReports();
  const dated = pageDated && !refused;
  const filtered = pageFiltered && !refused;
  useEffect(() => {
    document.title = `${title} · CADLINK Analytics`;
  }, [title]);
  const shared = sharedQuery(route.query);
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" {...link("/", shared)}>
          <span class="logo" aria-hidden="true">◆</span> CADLINK
        </a>
        <SiteSwitcher sites={sites} site={site} />
        <button type="button" class="link logout" onClick={() => signOut()}>
          Log out
        </button>
      </header>
      <nav class="nav" aria-label="Pages">
        {Object.entries(PAGES).map(([path, [name]]) => (
          <a {...link(path, shared)} class={path === route.path ? "active" : ""} aria-current={path === route.path ? "page" : undefined}>
            {name}
          </a>
        ))}
      </nav>
      <main id="main" class="main">
        <div class="page-head">
          <h1>{title}</h1>
          {site && dated && <DateRange query={route.query} site={site} />}
        </div>
        {site && filtered && <FilterBar query={route.query} />}
        {sitesQ.error ? (
          <ErrorBox error={sitesQ.error} retry={sitesQ.reload} />
        ) : !sites ? (
          <Loading />
        ) : sites.length === 0 ? (
          <NoSites />
        ) : refused ? (
          <Forbidden />
        ) : (
          // Keyed by site: a page's state (a form, a draft) never carries over to another site.
          <Page key={site.id} site={site} sites={sites} query={route.query} reloadSites={sitesQ.reload} />
        )}
      </main>
    </div>
  );
}

function NotFound() {
  return (
    <p>
      This page does not exist. <a {...link("/")}>Go to the overview</a>.
    </p>
  );
}

function NoSites() {
  return (
    <div class="state empty">
      No sites yet. Create one with <code>cadlink sites create --domain example.com</code> or on the{" "}
      <a {...link("/settings")}>settings page</a>.
    </div>
  );
}

const root = document.getElementById("app");
root.textContent = ""; // the boot message
render(<App />, root);
