import { Async, BarList, Card, Panel, Table } from "../components/ui.jsx";
import { byCurrency, num, pct } from "../format.js";
import { useApi } from "../hooks.js";
import { reportParams } from "../view.js";

export function Products({ site, query }) {
  const params = { ...reportParams(site, query), limit: 20 };
  const top = useApi("/api/v1/analytics/products/top", params);
  const aff = useApi("/api/v1/analytics/products/affiliate", { ...params, limit: 10 });
  return (
    <div class="stack">
      <Async q={aff}>
        {(a) => (
          <>
            <div class="cards">
              <Card name="affiliateClicks" label="Affiliate clicks" value={num(a.clicks)} raw={a.clicks} />
              <Card name="affiliateVisitors" label="Visitors who clicked" value={num(a.visitors)} raw={a.visitors} />
            </div>
            <div class="grid2">
              <Panel title="Affiliate clicks by platform">
                <BarList caption="Platform" rows={a.byPlatform} labelKey="platform" valueKey="clicks" columns={[{ key: "clicks", label: "Clicks" }, { key: "visitors", label: "Visitors" }]} />
              </Panel>
              <Panel title="Affiliate clicks by position">
                <BarList caption="Position" rows={a.byPosition} labelKey="position" valueKey="clicks" display={(r) => (r.position === null ? "(none)" : `Position ${r.position}`)} columns={[{ key: "clicks", label: "Clicks" }, { key: "visitors", label: "Visitors" }]} />
              </Panel>
            </div>
          </>
        )}
      </Async>
      <Panel title="Top products">
        <Async q={top}>
          {(rows) => (
            <Table
              caption="Top products"
              rows={rows}
              rowKey="productId"
              empty="No product events in this period. The tracker sends them from elements with data-product-id."
              columns={[
                { key: "name", label: "Product", render: (r) => <span title={r.productId}>{r.name || r.productId}</span> },
                { key: "views", label: "Views", num: true, format: num },
                { key: "uniqueViews", label: "Unique", num: true, format: num },
                { key: "clicks", label: "Clicks", num: true, format: num },
                { key: "affiliateClicks", label: "Affiliate", num: true, format: num },
                { key: "clickThroughRate", label: "CTR", num: true, format: (v) => pct(v) },
                { key: "wishlist", label: "Wishlist", num: true, format: num },
                { key: "compare", label: "Compare", num: true, format: num },
                { key: "revenueByCurrency", label: "Revenue", num: true, render: (r) => byCurrency(r.revenueByCurrency) },
              ]}
            />
          )}
        </Async>
      </Panel>
    </div>
  );
}
