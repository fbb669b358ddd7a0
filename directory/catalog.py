"""Product catalog rules (pure): where a product of each level may sit."""

from __future__ import annotations

from directory.enums import ProductLevel

_PARENT_LEVELS = {
    ProductLevel.GROUP: (),
    ProductLevel.SUBGROUP: (ProductLevel.GROUP,),
    ProductLevel.ITEM: (ProductLevel.GROUP, ProductLevel.SUBGROUP),
}


def check_product_parent(level: ProductLevel, parent_level: ProductLevel | None) -> str | None:
    """Why a product of ``level`` may not sit under a parent of ``parent_level``; None when it may.

    >>> check_product_parent(ProductLevel.ITEM, ProductLevel.SUBGROUP) is None
    True
    """
    level = ProductLevel(level)  # a row loaded from the database holds the plain string
    parent_level = ProductLevel(parent_level) if parent_level is not None else None
    allowed = _PARENT_LEVELS[level]
    if parent_level is None:
        return (
            None
            if not allowed
            else f"a {level.value} needs a parent ({' or '.join(a.value for a in allowed)})"
        )
    if parent_level not in allowed:
        return f"a {level.value} cannot sit under a {parent_level.value}"
    return None
