"""The reassignment benchmark's generated models (no database): a valid tree over the service's own
geography, the 20% model changing a fifth of the lowest territories, and the 1% model's change confined
to a few customer buckets, so an incremental plan has only their leads to evaluate."""

from __future__ import annotations

from bench.reassignment import (
    ACCOUNTS,
    BUCKETS,
    Config,
    _bucket_key,
    _countries,
    _vocabulary_dims,
    changed_cams,
    lowest_keys,
    model_defs,
)
from registration.reassignment.realignment import candidate_members, changed_territories
from territory.dimensions import Dimension, MemberHierarchy
from territory.snapshot import TerritorySnapshot


def _snapshot(defs) -> TerritorySnapshot:
    """The model over the hierarchies the benchmark stores (customer buckets of five accounts)."""
    customers: dict[str, str | None] = {}
    for _, country in _countries():
        for b in range(1, BUCKETS + 1):
            bucket = _bucket_key(country, b)
            customers[bucket] = None
            customers.update({f"{bucket}-{a}": bucket for a in range(1, ACCOUNTS + 1)})
    dims = {**_vocabulary_dims(), Dimension.CUSTOMER: MemberHierarchy(customers, name="customer")}
    return TerritorySnapshot("bench", defs, dims)


def test_the_models_are_valid_trees_and_the_one_percent_change_is_confined_to_its_buckets():
    defs = model_defs()
    assert len(defs) == 11_164 and len(lowest_keys(defs)) == 9_920
    twenty, one = changed_cams(Config(leads=1_000, workers=1, chunk_size=100), defs)
    assert len(twenty) == 1_984 and len(one) == 96
    base = _snapshot(defs)
    small = _snapshot(model_defs(one))
    changed = changed_territories(base, small)
    assert changed == frozenset(one)
    members = candidate_members((base, small), changed)
    assert members is not None and set(members) == {Dimension.CUSTOMER}
    buckets = {key.rsplit("-G", 1)[0] for key in one}
    assert len(buckets) == 12
    assert len(members[Dimension.CUSTOMER]) == 12 * (1 + ACCOUNTS)
    # a lead of one of those buckets' accounts matches exactly one lowest territory, in either model
    country, b = next(iter(buckets)).split("-B")
    facts = {"customer": f"{_bucket_key(country, int(b))}-1", "product": "P-G3-I1", "geography": country}
    assert base.match(facts).lowest == small.match(facts).lowest == (f"{country}-B{b}-G3",)
    assert base.cam_for(f"{country}-B{b}-G3") != small.cam_for(f"{country}-B{b}-G3")
