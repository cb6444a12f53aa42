"""Generate `parkmodel/data/registry.yaml`: the eight Ordos parks of the seed plan, and a demo
population of enterprises and devices in three of them.

Run `python -m deploy.gen_registry` after editing; the YAML file is what the platform loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SEED = "鄂尔多斯市工业园区高质量发展三年行动方案 (seed 000)"
OUT = Path(__file__).resolve().parent.parent / "parkmodel" / "data" / "registry.yaml"

# id, name, name_en, output target 2022 and 2025 (10^8 yuan), new-energy targets, green park by
PARKS: list[dict[str, Any]] = [
    {"id": "otog", "name": "鄂托克经济开发区", "name_en": "Otog Economic Development Zone",
     "out": (1000, 1000), "ne": [(2025, 0.5, "鄂托克经济开发区低碳产业园")]},
    {"id": "jungar", "name": "准格尔经济开发区", "name_en": "Jungar Economic Development Zone", "out": (500, 500)},
    {"id": "sulige", "name": "苏里格经济开发区", "name_en": "Sulige Economic Development Zone", "out": (500, 500),
     "green_by": 2025},
    {"id": "mengsu", "name": "蒙苏经济开发区", "name_en": "Mengsu Economic Development Zone", "out": (200, 1000),
     "ne": [(2023, 0.5, "鄂尔多斯零碳产业园"), (2025, 0.8, "鄂尔多斯零碳产业园")]},
    {"id": "hightech", "name": "鄂尔多斯高新技术产业开发区", "name_en": "Ordos High-tech Industrial Development Zone",
     "out": (200, 500)},
    {"id": "dalad", "name": "达拉特经济开发区", "name_en": "Dalad Economic Development Zone", "out": (200, 500)},
    {"id": "hanggin", "name": "杭锦经济开发区", "name_en": "Hanggin Economic Development Zone", "out": (200, 500),
     "green_by": 2025},
    {"id": "shanghaimiao", "name": "上海庙经济开发区", "name_en": "Shanghaimiao Economic Development Zone",
     "out": (200, 300)},
]

# Demo enterprises: park, id, name, name_en, industry, area, land (mu), contracted kW, base load kW,
# and on-site assets (pv kWp, wind kW, storage kW, green-supply kW) and fuels.
ENTERPRISES: list[dict[str, Any]] = [
    {"park": "mengsu", "id": "zc-battery", "name": "零碳园动力电池有限公司", "name_en": "ZC Power Battery Co.",
     "industry": "动力电池", "area": "鄂尔多斯零碳产业园", "mu": 820, "cap": 40000, "load": 18000,
     "pv": 6000, "wind": 0, "storage": 4000, "green": 12000, "gas": True, "steam": True},
    {"park": "mengsu", "id": "zc-pvglass", "name": "零碳园光伏材料有限公司", "name_en": "ZC PV Materials Co.",
     "industry": "光伏材料", "area": "鄂尔多斯零碳产业园", "mu": 560, "cap": 25000, "load": 11000,
     "pv": 5000, "wind": 3000, "storage": 2000, "green": 6000, "gas": True, "steam": False},
    {"park": "mengsu", "id": "zc-hydrogen", "name": "零碳园绿氢装备有限公司", "name_en": "ZC Green Hydrogen Equipment Co.",
     "industry": "氢能装备", "area": "鄂尔多斯零碳产业园", "mu": 300, "cap": 12000, "load": 5200,
     "pv": 3000, "wind": 2500, "storage": 1000, "green": 2000, "gas": False, "steam": False},
    {"park": "mengsu", "id": "zc-ev", "name": "零碳园新能源重卡有限公司", "name_en": "ZC Electric Truck Co.",
     "industry": "新能源汽车", "area": "鄂尔多斯零碳产业园", "mu": 450, "cap": 10000, "load": 4200,
     "pv": 2500, "wind": 0, "storage": 1000, "green": 1500, "gas": True, "steam": False},
    {"park": "otog", "id": "ot-coalchem", "name": "鄂托克煤化工有限公司", "name_en": "Otog Coal Chemical Co.",
     "industry": "煤化工", "area": "", "mu": 1500, "cap": 60000, "load": 32000,
     "pv": 0, "wind": 0, "storage": 0, "green": 0, "gas": True, "steam": True},
    {"park": "otog", "id": "ot-pvc", "name": "鄂托克氯碱化工有限公司", "name_en": "Otog Chlor-alkali Co.",
     "industry": "氯碱化工", "area": "", "mu": 900, "cap": 45000, "load": 26000,
     "pv": 0, "wind": 0, "storage": 0, "green": 0, "gas": True, "steam": True},
    {"park": "otog", "id": "ot-lowcarbon-si", "name": "鄂托克低碳硅材料有限公司", "name_en": "Otog Low-carbon Silicon Co.",
     "industry": "硅材料", "area": "鄂托克经济开发区低碳产业园", "mu": 620, "cap": 30000, "load": 15000,
     "pv": 8000, "wind": 6000, "storage": 3000, "green": 3000, "gas": False, "steam": True},
    {"park": "otog", "id": "ot-metal", "name": "鄂托克特种合金有限公司", "name_en": "Otog Special Alloy Co.",
     "industry": "冶金", "area": "", "mu": 700, "cap": 35000, "load": 20000,
     "pv": 1500, "wind": 0, "storage": 0, "green": 0, "gas": True, "steam": False},
    {"park": "sulige", "id": "sl-gaschem", "name": "苏里格天然气化工有限公司", "name_en": "Sulige Gas Chemical Co.",
     "industry": "天然气化工", "area": "", "mu": 1100, "cap": 30000, "load": 14000,
     "pv": 2000, "wind": 0, "storage": 500, "green": 0, "gas": True, "steam": True},
    {"park": "sulige", "id": "sl-lng", "name": "苏里格液化天然气有限公司", "name_en": "Sulige LNG Co.",
     "industry": "LNG", "area": "", "mu": 500, "cap": 15000, "load": 7000,
     "pv": 1000, "wind": 0, "storage": 0, "green": 0, "gas": True, "steam": False},
    {"park": "sulige", "id": "sl-methanol", "name": "苏里格甲醇有限公司", "name_en": "Sulige Methanol Co.",
     "industry": "甲醇", "area": "", "mu": 850, "cap": 25000, "load": 12000,
     "pv": 0, "wind": 4000, "storage": 0, "green": 0, "gas": True, "steam": True},
    {"park": "sulige", "id": "sl-newmat", "name": "苏里格新材料有限公司", "name_en": "Sulige New Materials Co.",
     "industry": "新材料", "area": "", "mu": 380, "cap": 8000, "load": 3500,
     "pv": 1200, "wind": 0, "storage": 300, "green": 0, "gas": False, "steam": False},
]

LOAD_NAMES = [("production", "生产线"), ("utility", "公用工程"), ("hvac", "空调暖通"), ("office", "办公生活")]
LOAD_SHARES = [0.62, 0.22, 0.1, 0.06]


def enterprise_devices(e: dict[str, Any]) -> list[dict[str, Any]]:
    p = e["id"]
    # Two meter models in the park, so both float32 and scaled-integer decoding run in the demo.
    meter = "eastron_sdm630" if sum(map(ord, p)) % 2 else "acrel_dtsd1352"
    devs: list[dict[str, Any]] = [
        {"id": f"{p}-grid", "role": "grid_meter", "template": "acrel_dtsd1352", "name": "电网关口表",
         "location": "110kV 总降变电站", "rated_kw": e["cap"]},
    ]
    for (suffix, zh), share in zip(LOAD_NAMES, LOAD_SHARES, strict=True):
        devs.append({"id": f"{p}-load-{suffix}", "role": "load_meter", "template": meter, "name": f"{zh}分项计量",
                     "location": f"{zh}配电室", "parent": f"{p}-grid", "rated_kw": round(e["load"] * share, 1)})
    if e["green"]:
        devs.append({"id": f"{p}-green", "role": "green_supply", "template": "acrel_dtsd1352",
                     "name": "绿电直供线路计量", "location": "绿电直供开关站", "rated_kw": e["green"]})
    if e["pv"]:
        for i in (1, 2):
            devs.append({"id": f"{p}-pv{i}", "role": "pv", "template": "huawei_sun2000", "name": f"屋顶光伏逆变器{i}",
                         "location": f"{i}号厂房屋顶", "rated_kw": e["pv"] / 2})
    if e["wind"]:
        devs.append({"id": f"{p}-wind1", "role": "wind", "template": "wind_turbine_cdab", "name": "分散式风机",
                     "location": "厂区北侧风机平台", "rated_kw": e["wind"]})
    if e["storage"]:
        devs.append({"id": f"{p}-ess1", "role": "storage", "template": "storage_pcs", "name": "储能变流器",
                     "location": "储能电站", "rated_kw": e["storage"]})
    if e["gas"]:
        devs.append({"id": f"{p}-gas", "role": "gas_meter", "template": "gas_flowmeter_f64", "name": "天然气总表",
                     "location": "调压站"})
    if e["steam"]:
        devs.append({"id": f"{p}-steam", "role": "steam_meter", "template": "steam_flowmeter", "name": "蒸汽总表",
                     "location": "蒸汽入厂管廊"})
    devs.append({"id": f"{p}-water", "role": "water_meter", "template": "water_meter_badc", "name": "新水总表",
                 "location": "给水泵房"})
    for i, where in ((1, "生产车间"), (2, "罐区")):
        devs.append({"id": f"{p}-gd{i}", "role": "gas_detector", "template": "gas_detector",
                     "name": f"可燃/有毒气体探测器{i}", "location": where, "poll_interval_s": 1.0})
    devs.append({"id": f"{p}-env", "role": "env_sensor", "template": "env_station", "name": "厂界空气质量微站",
                 "location": "厂界东南角", "poll_interval_s": 5.0})
    devs.append({"id": f"{p}-fire", "role": "fire_panel", "template": "fire_panel", "name": "火灾报警控制器",
                 "location": "消防控制室", "poll_interval_s": 1.0})
    return devs


def build() -> dict[str, Any]:
    parks = []
    for p in PARKS:
        park: dict[str, Any] = {
            "id": p["id"], "name": p["name"], "name_en": p["name_en"],
            "output_targets": [
                {"year": 2022, "output_value_yi_yuan": p["out"][0], "source": SEED},
                {"year": 2025, "output_value_yi_yuan": p["out"][1], "source": SEED},
            ],
            "new_energy_targets": [
                {"year": y, "ratio": r, "area": a, "source": SEED} for y, r, a in p.get("ne", [])
            ],
            "enterprises": [],
        }
        if "green_by" in p:
            park["green_park_target_year"] = p["green_by"]
        for e in (e for e in ENTERPRISES if e["park"] == p["id"]):
            park["enterprises"].append({
                "id": e["id"], "name": e["name"], "name_en": e["name_en"], "industry": e["industry"],
                "area": e["area"], "land_area_mu": e["mu"], "contracted_capacity_kw": e["cap"],
                "gateways": [{"id": f"{e['id']}-gw1", "name": "能源与安全数据网关",
                              "devices": enterprise_devices(e)}],
            })
        parks.append(park)
    return {"version": 1, "parks": parks}


def main() -> None:
    header = "# Generated by `python -m deploy.gen_registry`; edit the generator, not this file.\n"
    OUT.write_text(header + yaml.safe_dump(build(), allow_unicode=True, sort_keys=False, width=120), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
