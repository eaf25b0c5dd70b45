"""What the demo shop contains: pages, products, blog posts, search queries, traffic sources.

Built once per domain (cached) from a fixed seed, so product ids and slugs are the same for every
demo run; popularity follows a Zipf law so a few pages and products dominate.
"""

from __future__ import annotations

import functools
import math
from bisect import bisect
from dataclasses import dataclass, field
from itertools import accumulate
from random import Random
from urllib.parse import quote_plus

SITE_NAME = "Demo Shop"
N_PRODUCTS = 200
_LETTERS = "ABCDEHKMPRSTVXZ"
_CATALOG_SEED = 20240601

# (slug, name, price range, product types)
CATEGORIES: tuple[tuple[str, str, tuple[int, int], tuple[str, ...]], ...] = (
    ("headphones", "Headphones", (29, 449), ("Wireless Headphones", "Noise-Cancelling Headphones",
     "True Wireless Earbuds", "Gaming Headset", "Sport Earbuds")),
    ("laptops", "Laptops", (399, 2499), ("Ultrabook 14", "Gaming Laptop 16", "2-in-1 Laptop",
     "Chromebook", "Workstation Laptop 15")),
    ("smartphones", "Smartphones", (199, 1399), ("5G Smartphone", "Compact Phone", "Phone Pro Max",
     "Budget Phone")),
    ("smart-home", "Smart Home", (19, 299), ("Smart Speaker", "Video Doorbell", "Smart Plug 4-Pack",
     "Robot Vacuum", "Smart Thermostat", "Mesh Wi-Fi System")),
    ("cameras", "Cameras", (149, 2199), ("Mirrorless Camera", "Action Camera", "Vlogging Camera",
     "Instant Camera", "Security Camera")),
    ("gaming", "Gaming", (19, 599), ("Mechanical Keyboard", "Gaming Mouse", "Wireless Controller",
     "4K Gaming Monitor", "Racing Wheel")),
    ("wearables", "Wearables", (49, 799), ("Smartwatch", "Fitness Tracker", "Smart Ring",
     "GPS Running Watch")),
    ("kitchen", "Kitchen", (25, 699), ("Air Fryer", "Espresso Machine", "Blender",
     "Sous Vide Cooker", "Electric Kettle")),
    ("fitness", "Fitness", (15, 499), ("Adjustable Dumbbells", "Yoga Mat", "Massage Gun",
     "Smart Scale", "Exercise Bike")),
    ("office", "Home Office", (29, 899), ("Ergonomic Chair", "Standing Desk", "USB-C Dock",
     "4K Webcam", "Monitor Arm")),
)  # fmt: skip
BRANDS = (
    "Sonara",
    "Voltix",
    "Aurelis",
    "Nordtek",
    "Kairo",
    "Lumio",
    "Zentra",
    "Orbis",
    "Pellux",
    "Quanta",
    "Vireo",
    "Halden",
)
# (platform, weight, url template, call to action)
PLATFORMS: tuple[tuple[str, float, str, str], ...] = (
    ("amazon", 55, "https://www.amazon.com/dp/{code}?tag=demoshop-20", "Check price on Amazon"),
    ("ebay", 12, "https://www.ebay.com/itm/{num}?mkcid=1&campid=5339012345", "See it on eBay"),
    ("walmart", 10, "https://www.walmart.com/ip/{num}?affiliates_ad_id=565706", "Buy at Walmart"),
    ("bestbuy", 8, "https://www.bestbuy.com/site/{num}.p?ref=demoshop", "View at Best Buy"),
    ("target", 5, "https://www.target.com/p/-/A-{num}?afid=demoshop", "Shop at Target"),
    ("aliexpress", 6, "https://www.aliexpress.com/item/{num}.html?aff_fcid=demo", "View deal"),
    ("etsy", 4, "https://www.etsy.com/listing/{num}?utm_source=demoshop", "Find on Etsy"),
)
GENERAL_QUERIES = (
    "wireless earbuds",
    "gaming laptop",
    "air fryer",
    "standing desk",
    "4k webcam",
    "noise cancelling headphones",
    "smartwatch",
    "robot vacuum",
    "espresso machine",
    "mechanical keyboard",
    "usb-c dock",
    "black friday deals",
    "gift ideas",
    "coupon code",
    "cheap headphones",
    "best laptop for students",
)
MISSPELT_QUERIES = (
    "hedphones",
    "wireles earbuds",
    "labtop",
    "smart wach",
    "bluetoth speaker",
    "expresso machine",
    "ergonmic chair",
    "noise canceling hedphones",
    "airfrier",
    "mecanical keyboard",
    "robot vaccum",
    "gamming mouse",
    "smart thermostaat",
    "iphnoe case",
    "fitnes tracker",
)


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    category: str
    price: float
    platform: str
    affiliate_url: str
    cta: str


@dataclass(frozen=True, slots=True)
class Page:
    # home, category, product, blog, search, cart, checkout, thanks, deals, compare, about,
    # contact or newsletter
    kind: str
    path: str
    url: str
    title: str
    product: Product | None = None
    category: str | None = None
    related: tuple[int, ...] = ()  # indexes into Catalog.product_pages
    query: str | None = None  # search pages


@dataclass(frozen=True, slots=True)
class Weighted:
    """Items with cumulative weights: `pick(rng)` is one random() and a bisect."""

    items: tuple[Page, ...]
    cum: tuple[float, ...]

    def pick(self, rng: Random) -> Page:
        return self.items[bisect(self.cum, rng.random() * self.cum[-1])]


@dataclass(frozen=True, slots=True)
class Catalog:
    domain: str
    home: Page
    fixed: dict[str, Page]  # cart, checkout, thanks, deals, compare, about, contact, newsletter
    product_pages: tuple[Page, ...]
    products: Weighted  # product pages, Zipf
    by_category: dict[str, Weighted]  # product pages per category, Zipf
    categories: Weighted  # category pages, Zipf
    blog: Weighted
    searches: Weighted  # search pages for correctly spelt queries, Zipf
    misspelt: Weighted  # search pages that find nothing
    all_pages: tuple[Page, ...]  # what crawlers walk through, uniformly
    results: dict[str, int] = field(default_factory=dict)  # query -> result count


def zipf(n: int, s: float = 1.1) -> tuple[float, ...]:
    """Cumulative Zipf weights for ranks 1..n."""
    return tuple(accumulate(1.0 / (r**s) for r in range(1, n + 1)))


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


@functools.cache
def build_catalog(domain: str) -> Catalog:
    rng = Random(_CATALOG_SEED)
    base = f"https://{domain}"

    def page(kind: str, path: str, title: str, **kw: object) -> Page:
        return Page(kind, path, base + path, f"{title} — {SITE_NAME}", **kw)  # type: ignore[arg-type]

    products: list[Page] = []
    seen: set[str] = set()
    plat_cum = list(accumulate(p[1] for p in PLATFORMS))
    for i in range(N_PRODUCTS):
        cat, _, (lo, hi), types = CATEGORIES[i % len(CATEGORIES)]
        letters = rng.choice(_LETTERS) + rng.choice(_LETTERS)
        model = f"{letters}-{rng.randrange(1, 99) * 10}"
        name = f"{rng.choice(BRANDS)} {model} {rng.choice(types)}"
        slug = _slug(name)
        while slug in seen:
            slug += "-2"
        seen.add(slug)
        price = max(9.99, round(math.exp(rng.uniform(math.log(lo), math.log(hi)))) - 0.01)
        plat, _, url, cta = PLATFORMS[bisect(plat_cum, rng.random() * plat_cum[-1])]
        code = "B0" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTVWXYZ") for _ in range(8))
        url = url.format(code=code, num=rng.randrange(10**8, 10**9))
        prod = Product(f"prd_{1001 + i}", name, cat, price, plat, url, cta)
        products.append(page("product", f"/products/{slug}", name, product=prod, category=cat))
    order = list(range(N_PRODUCTS))
    rng.shuffle(order)  # popularity rank independent of category
    ranked = tuple(products[i] for i in order)
    by_cat = {
        c[0]: Weighted(
            tuple(p for p in ranked if p.category == c[0]), zipf(N_PRODUCTS // len(CATEGORIES))
        )
        for c in CATEGORIES
    }
    cat_pages = tuple(
        page("category", f"/categories/{slug}", name, category=slug)
        for slug, name, _, _ in CATEGORIES
    )
    cat_order = list(cat_pages)
    rng.shuffle(cat_order)
    index = {p.path: i for i, p in enumerate(ranked)}

    posts: list[Page] = []
    year = 2025
    for slug, name, _, _ in CATEGORIES:
        rel = tuple(index[p.path] for p in by_cat[slug].items[:8])
        posts.append(
            page(
                "blog",
                f"/blog/best-{slug}-{year}",
                f"The 10 Best {name} of {year}",
                category=slug,
                related=rel,
            )
        )
        posts.append(
            page(
                "blog",
                f"/blog/how-to-choose-{slug}",
                f"How to Choose {name}: A Buyer's Guide",
                category=slug,
                related=rel,
            )
        )
    for p in ranked[:12]:
        posts.append(
            page(
                "blog",
                f"/blog/{p.path.rsplit('/', 1)[1]}-review",
                f"{p.title.split(' — ')[0]} Review",
                category=p.category,
                related=(index[p.path],),
            )
        )
    for a, b in zip(ranked[12:18], ranked[18:24], strict=True):
        title = f"{a.title.split(' — ')[0]} vs {b.title.split(' — ')[0]}"
        posts.append(
            page("blog", f"/blog/{_slug(title)}", title, related=(index[a.path], index[b.path]))
        )
    for title in (
        "Black Friday Tech Deals",
        "Gift Guide for Gamers",
        "How We Test Products",
        "Wi-Fi 7 Explained",
        "Home Office Setup Guide",
        "Coffee Gear Starter Kit",
    ):
        posts.append(
            page("blog", f"/blog/{_slug(title)}", title, related=tuple(rng.sample(range(60), 5)))
        )
    rng.shuffle(posts)

    queries = [*(c[1].lower() for c in CATEGORIES), *GENERAL_QUERIES]
    queries += [p.title.split(" — ")[0].lower().split(" ", 1)[1] for p in ranked[:20]]
    rng.shuffle(queries)
    results = {q: 3 + int(rng.paretovariate(1.2) * 6) for q in queries}
    results.update({q: 0 for q in MISSPELT_QUERIES})

    def search(q: str) -> Page:
        url = f"{base}/search?q={quote_plus(q)}"
        return Page("search", "/search", url, f"Search: {q} — {SITE_NAME}", query=q)

    fixed = {
        "cart": page("cart", "/cart", "Your Cart"),
        "checkout": page("checkout", "/checkout", "Checkout"),
        "thanks": page("thanks", "/checkout/thank-you", "Thank You for Your Order"),
        "deals": page("deals", "/deals", "Today's Deals"),
        "compare": page("compare", "/compare", "Compare Products"),
        "about": page("about", "/about", "About Us"),
        "contact": page("contact", "/contact", "Contact"),
        "newsletter": page("newsletter", "/newsletter", "Newsletter"),
    }
    home = Page("home", "/", base + "/", f"{SITE_NAME} — Tech Deals, Reviews & Buying Guides")
    return Catalog(
        domain=domain,
        home=home,
        fixed=fixed,
        product_pages=ranked,
        products=Weighted(ranked, zipf(len(ranked))),
        by_category=by_cat,
        categories=Weighted(tuple(cat_order), zipf(len(cat_order), 0.9)),
        blog=Weighted(tuple(posts), zipf(len(posts))),
        searches=Weighted(tuple(search(q) for q in queries), zipf(len(queries), 1.0)),
        misspelt=Weighted(
            tuple(search(q) for q in MISSPELT_QUERIES), zipf(len(MISSPELT_QUERIES), 0.8)
        ),
        all_pages=(home, *cat_pages, *ranked, *posts, *fixed.values()),
        results=results,
    )


# Traffic sources: (name, weight for new visitors, weight for returning visitors, referrer,
# utm (source, medium, campaign, term, content) or None, landing kinds with weights).
# A referrer "google" means the visitor's country's Google domain; "a|b" are alternatives.
SOURCES: tuple[tuple[str, float, float, str | None, tuple[str, ...] | None, str], ...] = (
    ("direct", 20, 45, None, None, "home:70 product:15 category:10 deals:5"),
    ("google", 30, 15, "google", None, "product:40 blog:30 category:15 home:15"),
    ("bing", 5, 3, "https://www.bing.com/", None, "product:40 blog:30 category:15 home:15"),
    ("duckduckgo", 3, 2, "https://duckduckgo.com/", None, "product:40 blog:35 home:25"),
    ("ecosia", 1, 0.5, "https://www.ecosia.org/", None, "product:50 blog:50"),
    ("facebook", 4, 2, "http://m.facebook.com/|https://www.facebook.com/", None,
     "product:45 blog:35 deals:20"),
    ("instagram", 3, 1, "https://l.instagram.com/", None, "product:60 deals:40"),
    ("reddit", 3, 1.5, "https://www.reddit.com/r/BuyItForLife/|https://old.reddit.com/r/gadgets/",
     None, "product:45 blog:55"),
    ("x", 2, 1, "https://t.co/", None, "product:50 blog:30 deals:20"),
    ("pinterest", 1.5, 0.5, "https://www.pinterest.com/", None, "product:60 blog:40"),
    ("chatgpt", 1.5, 1, "https://chatgpt.com/", None, "product:50 blog:30 home:20"),
    ("newsletter", 4, 14, None,
     ("newsletter", "email", "weekly-deals", "", "hero-cta|product-grid"),
     "deals:40 product:35 blog:25"),
    ("google-ads", 6, 3, "google", ("google", "cpc", "spring-sale|brand-search|shopping-headphones",
     "best headphones|gaming laptop deal|air fryer sale|demo shop", ""),
     "product:60 category:30 deals:10"),
    ("facebook-ads", 3, 1, "http://m.facebook.com/|https://www.facebook.com/",
     ("facebook", "paid_social", "summer-sale|retargeting-q3", "", "carousel-1|video-15s"),
     "product:60 deals:40"),
    ("instagram-influencer", 2, 0.5, "https://l.instagram.com/",
     ("instagram", "social", "influencer-q3", "", "story|bio-link"), "product:80 deals:20"),
    ("partner", 5, 3, "https://techreviewhub.example/best-headphones-2025|https://gadgetflow.example/"
     "deals|https://homebarista.example/gear", ("partner", "referral", "spring-roundup", "", ""),
     "product:80 deals:10 category:10"),
    ("partner-blog", 3, 1.5, "https://nerdwallet.example/tech/|https://thewirecutter.example/reviews/",
     None, "product:70 blog:30"),
)  # fmt: skip
