"""Random but valid territory models and leads, for tests and benchmarks (deterministic per seed).

Shapes follow a channel sales organisation: worldwide -> region -> country -> customer segment ->
product line -> program track -> named accounts -> product subgroup -> area -> program tier -> ...
The children of a territory partition its coverage: they split the members one level below it on the
level's dimension among themselves (several members each when there are more members than children);
when that dimension has fewer members than there are children, the children sharing one member split
it again on a second (third...) dimension, so such a child narrows two dimensions at once. Siblings
therefore do not overlap and a lead matches about one territory per level, as in a real organisation
(named-account territories cover one to three accounts each and leave the others to their parent).
Coverage nests, so ``validate_tree`` has nothing to warn about unless ``loose_rate`` asks for some
strays; some territories exclude a member inside what they cover, and most (not all) territories have
a channel account manager.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence

from territory.dimensions import Dimension, MemberHierarchy
from territory.tree import CHANNEL_ACCOUNT_MANAGER, Coverage, TeamMember, TerritoryDef

_REGIONS: dict[str, tuple[str, ...]] = {
    "AMER": ("US", "CA", "MX"),
    "LATAM": ("BR", "AR", "CL", "CO", "PE", "UY"),
    "EMEA": ("GB", "FR", "DE", "IT", "ES", "NL", "BE", "SE", "NO", "PL", "CH", "AE", "SA", "ZA", "IL"),
    "APAC": ("JP", "CN", "IN", "AU", "NZ", "SG", "KR", "ID", "TH", "VN", "MY", "PH"),
}
_SEGMENTS = ("enterprise", "commercial", "smb", "public-sector")
_TRACKS = ("reseller", "distributor", "msp", "isv", "alliance")
_TIERS = ("registered", "silver", "gold", "platinum")

# (territory type, dimension the child narrows first) per depth; deeper levels cycle the tail.
_SCHEDULE: tuple[tuple[str, Dimension], ...] = (
    ("region", Dimension.GEOGRAPHY),
    ("country", Dimension.GEOGRAPHY),
    ("segment", Dimension.CUSTOMER),
    ("product_line", Dimension.PRODUCT),
    ("program", Dimension.PROGRAM),
    ("named_accounts", Dimension.CUSTOMER),
    ("product_family", Dimension.PRODUCT),
    ("area", Dimension.GEOGRAPHY),
    ("tier", Dimension.PROGRAM),
)
_GENERATED = (Dimension.CUSTOMER, Dimension.PROGRAM, Dimension.PRODUCT, Dimension.GEOGRAPHY)


def generate_dimensions(n_customers: int = 2_000, seed: int = 0) -> dict[str, MemberHierarchy]:
    """Build customer, program, product and geography hierarchies of realistic shape.

    Examples
    --------
    >>> dims = generate_dimensions(n_customers=50, seed=1)
    >>> dims[Dimension.GEOGRAPHY].ancestors_or_self("JP-A1")
    ('JP-A1', 'JP', 'APAC', 'WORLD')
    """
    rng = random.Random(seed)
    geo: dict[str, str | None] = {"WORLD": None}
    for region, countries in _REGIONS.items():
        geo[region] = "WORLD"
        for cc in countries:
            geo[cc] = region
            for a in range(1, rng.randint(3, 6) + 1):
                area = f"{cc}-A{a}"
                geo[area] = cc
                for c in range(1, rng.randint(2, 4) + 1):
                    geo[f"{area}-{c}"] = area
    product: dict[str, str | None] = {"ALL-PRODUCTS": None}
    for g in range(1, 9):
        group = f"P-G{g}"
        product[group] = "ALL-PRODUCTS"
        for s in range(1, rng.randint(3, 6) + 1):
            sub = f"{group}-S{s}"
            product[sub] = group
            for i in range(1, rng.randint(4, 10) + 1):
                product[f"{sub}-I{i}"] = sub
    program: dict[str, str | None] = {"ALL-PROGRAMS": None}
    for track in _TRACKS:
        program[track] = "ALL-PROGRAMS"
        for tier in _TIERS:
            program[f"{track}-{tier}"] = track
    customer: dict[str, str | None] = {"ALL-CUSTOMERS": None}
    for seg in _SEGMENTS:
        customer[seg] = "ALL-CUSTOMERS"
    for a in range(1, n_customers + 1):
        account = f"C-{a:06d}"
        customer[account] = rng.choice(_SEGMENTS)
        for k in range(1, rng.randint(0, 4) + 1):
            customer[f"{account}-{k:02d}"] = account
    return {
        Dimension.CUSTOMER: MemberHierarchy(customer, name=Dimension.CUSTOMER.value),
        Dimension.PROGRAM: MemberHierarchy(program, name=Dimension.PROGRAM.value),
        Dimension.PRODUCT: MemberHierarchy(product, name=Dimension.PRODUCT.value),
        Dimension.GEOGRAPHY: MemberHierarchy(geo, name=Dimension.GEOGRAPHY.value),
    }


def _level_sizes(n: int, depth: int) -> list[int]:
    if depth == 0 or n == 1:
        return [n]
    depth = min(depth, n - 1)
    lo, hi = 1.0, float(n)
    for _ in range(60):  # fan-out f with 1 + f + ... + f**depth == n
        f = (lo + hi) / 2
        lo, hi = (f, hi) if sum(f**k for k in range(depth + 1)) < n else (lo, f)
    sizes = [max(1, round(f**k)) for k in range(depth)]
    sizes[0] = 1
    sizes.append(max(1, n - sum(sizes)))
    while sum(sizes) > n:  # rounding overshoot: trim the widest level above the last
        widest = max(range(1, depth), key=sizes.__getitem__)
        sizes[widest] -= 1
    return sizes


def generate_model(
    n_territories: int,
    depth: int = 6,
    seed: int = 0,
    *,
    n_customers: int | None = None,
    cam_rate: float = 0.85,
    exclusion_rate: float = 0.08,
    loose_rate: float = 0.0,
) -> tuple[list[TerritoryDef], dict[str, MemberHierarchy]]:
    """Generate ``n_territories`` territories ``depth`` levels deep (root = level 0) and their dimensions.

    Parameters
    ----------
    n_territories, depth, seed
        Size, depth of the deepest territories, and the random seed (same seed, same model).
    n_customers
        Top-level customer accounts (default: a tenth of the territories, at least 200).
    cam_rate
        Share of territories with a channel account manager of their own (a few have two).
    exclusion_rate
        Share of territories excluding one member inside what they cover.
    loose_rate
        Share of territories that ignore their parent's coverage on one dimension (``validate_tree``
        warns about each); 0 yields a model without warnings.

    Examples
    --------
    >>> defs, dims = generate_model(50, depth=4, seed=7)
    >>> len(defs), sum(d.parent_key is None for d in defs)
    (50, 1)
    """
    rng = random.Random(seed)
    dims = generate_dimensions(n_customers or max(200, n_territories // 10), seed=seed)
    sizes = _level_sizes(n_territories, depth)
    root = TerritoryDef(
        "T-000000",
        None,
        "Worldwide",
        "worldwide",
        team=_team(rng, 0, 0, cam_rate),
    )
    defs = [root]
    cache: _OptionCache = {}
    level: list[TerritoryDef] = [root]
    for lvl, size in enumerate(sizes[1:], start=1):
        kind, first = _SCHEDULE[(lvl - 1) % len(_SCHEDULE)]
        parents = [level[i % len(level)] for i in range(size)]
        counts: dict[str, int] = {}
        for parent in parents:
            counts[parent.key] = counts.get(parent.key, 0) + 1
        # Each parent's children split its coverage among themselves (computed in level order, then
        # handed out in the shuffled creation order).
        planned = {
            p.key: _partition(rng, dims, p, first, counts[p.key], cache) for p in level if p.key in counts
        }
        rng.shuffle(parents)
        next_level: list[TerritoryDef] = []
        last = lvl == len(sizes) - 1
        for parent in parents:
            number = len(defs)
            coverage = planned[parent.key].pop()
            if rng.random() < exclusion_rate:
                coverage = _add_exclusion(rng, dims, coverage, cache)
            if rng.random() < loose_rate:
                coverage = _loosen(rng, dims, coverage)
            t = TerritoryDef(
                f"T-{number:06d}",
                parent.key,
                f"{kind.replace('_', ' ').title()} {number}",
                "partner" if last else kind,
                team=_team(rng, number, lvl, cam_rate),
                partner=f"PARTNER-{rng.randint(1, 5_000):05d}" if last else None,
                coverage=coverage,
            )
            defs.append(t)
            next_level.append(t)
        level = next_level
    return defs, dims


def _team(rng: random.Random, number: int, lvl: int, cam_rate: float) -> tuple[TeamMember, ...]:
    team: list[TeamMember] = []
    if rng.random() < cam_rate:
        team.append(TeamMember(f"cam-{number:06d}", CHANNEL_ACCOUNT_MANAGER))
        if rng.random() < 0.05:
            team.append(TeamMember(f"cam-{number:06d}-b", CHANNEL_ACCOUNT_MANAGER))
    if lvl <= 1:
        team.append(TeamMember(f"csd-{number:06d}", "channel_sales_director"))
    elif lvl <= 3:
        team.append(TeamMember(f"csm-{number:06d}", "channel_sales_manager"))
    if rng.random() < 0.2:
        team.append(TeamMember(f"pam-{number:06d}", "partner_account_manager"))
    return tuple(team)


_OptionCache = dict[tuple[str, Coverage], tuple[str, ...]]


def _options(h: MemberHierarchy, cov: Coverage, cache: _OptionCache) -> tuple[str, ...]:
    """Members one level below what ``cov`` includes (below the top when unrestricted), not excluded."""
    found = cache.get((h.name, cov))
    if found is None:
        above = sorted(cov.include) if cov.include else list(h.roots)
        found = tuple(c for i in above for c in h.children(i) if cov.exclude.isdisjoint(h.ancestor_set(c)))
        cache[(h.name, cov)] = found
    return found


#: Above this many members, a customer split takes a few named accounts per child, not all of them.
_NAMED_ACCOUNTS_ABOVE = 24


def _split(rng: random.Random, dim: Dimension, options: Sequence[str], groups: int) -> list[frozenset[str]]:
    """At most ``groups`` disjoint, non-empty sets of ``options``.

    Every option is used (in near-equal groups), except for large customer lists: there each group is
    one to three named accounts and the other accounts stay with the parent.
    """
    if dim == Dimension.CUSTOMER and len(options) > max(_NAMED_ACCOUNTS_ABOVE, 3 * groups):
        sizes = [rng.randint(1, 3) for _ in range(groups)]
        picked = rng.sample(options, sum(sizes))
        starts = list(itertools.accumulate(sizes, initial=0))
        return [frozenset(picked[a:b]) for a, b in itertools.pairwise(starts)]
    shuffled = list(options)
    rng.shuffle(shuffled)
    if len(shuffled) <= groups:
        return [frozenset([o]) for o in shuffled]
    n = len(shuffled)
    return [frozenset(shuffled[i * n // groups : (i + 1) * n // groups]) for i in range(groups)]


def _partition(
    rng: random.Random,
    dims: Mapping[str, MemberHierarchy],
    parent: TerritoryDef,
    first: Dimension,
    k: int,
    cache: _OptionCache,
) -> list[dict[str, Coverage]]:
    """Coverages of ``k`` children of ``parent`` that do not overlap (as long as there is room to split)."""
    coverage: dict[str, Coverage] = {d: parent.coverage_on(d) for d in _GENERATED}
    order = [first, *rng.sample([d for d in _GENERATED if d != first], len(_GENERATED) - 1)]
    out = [
        {d: c for d, c in child.items() if c.include or c.exclude}
        for child in _carve(rng, dims, coverage, order, k, cache)
    ]
    rng.shuffle(out)
    return out


def _carve(
    rng: random.Random,
    dims: Mapping[str, MemberHierarchy],
    coverage: dict[str, Coverage],
    order: Sequence[Dimension],
    k: int,
    cache: _OptionCache,
) -> list[dict[str, Coverage]]:
    """Split ``coverage`` into ``k`` disjoint pieces: on the first dimension of ``order`` with members left
    to split; a group that has to serve several children is split again on the next dimension."""
    if k == 1:
        return [coverage]
    for i, dim in enumerate(order):
        options = _options(dims[dim], coverage[dim], cache)
        if len(options) < 2:
            continue
        groups = _split(rng, dim, options, k)
        shares = [k // len(groups) + (j < k % len(groups)) for j in range(len(groups))]
        rng.shuffle(shares)
        out: list[dict[str, Coverage]] = []
        for group, share in zip(groups, shares, strict=True):
            piece = {**coverage, dim: Coverage(group, coverage[dim].exclude)}
            out.extend(_carve(rng, dims, piece, order[i + 1 :], share, cache))
        return out
    return [coverage] * k  # nothing left to split: the pieces repeat (overlap)


def _add_exclusion(
    rng: random.Random,
    dims: Mapping[str, MemberHierarchy],
    coverage: dict[str, Coverage],
    cache: _OptionCache,
) -> dict[str, Coverage]:
    restricted = [d for d in _GENERATED if d in coverage and coverage[d].include]
    if not restricted:
        return coverage
    dim = rng.choice(restricted)
    options = _options(dims[dim], coverage[dim], cache)
    if len(options) < 2:  # excluding the only member below would leave nothing
        return coverage
    cov = coverage[dim]
    return {**coverage, dim: Coverage(cov.include, cov.exclude | {rng.choice(options)})}


def _loosen(
    rng: random.Random, dims: Mapping[str, MemberHierarchy], coverage: dict[str, Coverage]
) -> dict[str, Coverage]:
    dim = rng.choice(_GENERATED)
    h = dims[dim]
    if rng.random() < 0.5:  # unrestricted where the parent was not
        return {d: c for d, c in coverage.items() if d != dim}
    members = sorted(h)
    return {**coverage, dim: Coverage(frozenset([rng.choice(members)]), frozenset())}


def generate_leads(
    dimensions: Mapping[str, MemberHierarchy],
    n: int,
    seed: int = 0,
    *,
    missing_rate: float = 0.02,
    unknown_rate: float = 0.01,
) -> list[dict[str, str]]:
    """Generate ``n`` leads carrying a leaf member of each dimension; a few lack a fact or use an unknown one.

    Examples
    --------
    >>> dims = generate_dimensions(n_customers=10)
    >>> sorted(generate_leads(dims, 1, seed=3, missing_rate=0.0, unknown_rate=0.0)[0])
    ['customer', 'geography', 'product', 'program']
    """
    rng = random.Random(seed)
    leaves: dict[str, Sequence[str]] = {}
    for dim, h in dimensions.items():
        leaves[str(dim)] = [m for m in h if not h.children(m)]
    leads = []
    for _ in range(n):
        lead: dict[str, str] = {}
        for name, members in leaves.items():
            r = rng.random()
            if r < missing_rate:
                continue
            lead[name] = f"unknown-{name}" if r < missing_rate + unknown_rate else rng.choice(members)
        leads.append(lead)
    return leads
