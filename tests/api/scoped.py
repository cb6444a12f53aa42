"""A registry with two parks and enterprises holding meters and safety devices, for the scoping tests."""

from __future__ import annotations

from parkmodel.registry import Registry, parse_registry


def scoped_registry(uid: str) -> Registry:
    """Park `a{uid}` with enterprises `a{uid}-e1` (meter `a{uid}-m1`, gas detector `a{uid}-gas1`) and
    `a{uid}-e2` (meter `a{uid}-m2`, fire panel `a{uid}-fire2`); park `b{uid}` with `b{uid}-e1` (meter)."""
    def ent(park: str, n: int, safety: tuple[str, str, str] | None) -> dict[str, object]:
        devices: list[dict[str, object]] = [
            {"id": f"{park}-m{n}", "role": "grid_meter", "template": "acrel_dtsd1352", "location": "配电室"}]
        if safety:
            devices.append({"id": f"{park}-{safety[0]}{n}", "role": safety[1], "template": safety[2],
                            "location": f"{n} 号车间"})
        return {"id": f"{park}-e{n}", "name": f"企业{n}", "name_en": f"Enterprise {n}", "land_area_mu": 50 * n,
                "contracted_capacity_kw": 800, "gateways": [{"id": f"{park}-g{n}", "devices": devices}]}

    a, b = f"a{uid}", f"b{uid}"
    return parse_registry({"version": 1, "parks": [
        {"id": a, "name": "甲园区", "name_en": "Park A", "enterprises": [
            ent(a, 1, ("gas", "gas_detector", "gas_detector")), ent(a, 2, ("fire", "fire_panel", "fire_panel"))]},
        {"id": b, "name": "乙园区", "name_en": "Park B", "enterprises": [ent(b, 1, None)]},
    ]})
