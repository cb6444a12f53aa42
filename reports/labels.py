"""Report wording in Chinese (default) and English."""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]

LABELS: dict[str, tuple[str, str]] = {
    "enterprise_report": ("企业能源与亩均效益报告", "Enterprise energy and per-mu benefit report"),
    "park_report": ("园区能源与亩均效益报告", "Park energy and per-mu benefit report"),
    "park": ("园区", "Park"), "enterprise": ("企业", "Enterprise"), "period": ("报告期", "Period"),
    "eval_period": ("评价期", "Evaluation period"), "generated": ("生成时间", "Generated"),
    "industry": ("行业", "Industry"), "land": ("用地面积", "Land area"), "mu": ("亩", "mu"),
    "energy": ("能源消费", "Energy consumption"), "carrier": ("能源品种", "Carrier"),
    "quantity": ("实物量", "Physical quantity"), "unit": ("单位", "Unit"),
    "tce_eqv": ("折标煤(当量值) tce", "tce (equivalent, 当量值)"),
    "tce_eqlv": ("折标煤(等价值) tce", "tce (equal-value, 等价值)"),
    "coef": ("折标系数 kgce/单位", "kgce per unit"),
    "electricity": ("电力", "Electricity"), "gas": ("天然气", "Natural gas"), "steam": ("蒸汽", "Steam"),
    "water": ("新水", "Fresh water"), "total": ("合计", "Total"),
    "electricity_detail": ("电力明细", "Electricity detail"),
    "grid_import_kwh": ("电网购入", "Grid import"), "grid_export_kwh": ("上网电量", "Grid export"),
    "generation_kwh": ("自发电(光伏/风电)", "On-site generation (PV/wind)"),
    "green_supply_kwh": ("绿电直供", "Green direct supply"), "consumed_kwh": ("用电量", "Electricity consumed"),
    "renewable_consumed_kwh": ("新能源消纳电量", "Renewable consumed"),
    "net_purchase_kwh": ("净购电量", "Net purchase"),
    "carbon": ("二氧化碳排放", "CO2 emissions"), "scope1": ("范围一(燃料燃烧)", "Scope 1 (fuel combustion)"),
    "scope2": ("范围二(外购电力、热力)", "Scope 2 (purchased electricity, heat)"),
    "co2_t": ("二氧化碳 t", "CO2 t"), "intensity": ("碳排放强度 tCO2/tce", "Carbon intensity tCO2/tce"),
    "new_energy_ratio": ("新能源消纳比例", "New-energy consumption ratio"),
    "monthly": ("分月明细", "By month"), "month": ("月份", "Month"), "days": ("有数据天数", "Days with data"),
    "economy": ("经济指标", "Economic figures"), "months_reported": ("已报月数", "Months reported"),
    "output_value": ("工业总产值 万元", "Output value 10⁴ yuan"),
    "value_added": ("工业增加值 万元", "Value added 10⁴ yuan"), "tax_paid": ("实缴税金 万元", "Tax paid 10⁴ yuan"),
    "rd_expense": ("研发经费 万元", "R&D expense 10⁴ yuan"), "revenue": ("营业收入 万元", "Revenue 10⁴ yuan"),
    "employees": ("从业人员 人", "Employees"), "floor_area": ("建筑面积 m²", "Floor area m²"),
    "per_mu": ("亩均指标", "Per-mu figures"),
    "pm_output": ("亩均产值 万元/亩", "Output per mu 10⁴ yuan/mu"),
    "pm_value_added": ("亩均增加值 万元/亩", "Value added per mu 10⁴ yuan/mu"),
    "pm_tax": ("亩均税收 万元/亩", "Tax per mu 10⁴ yuan/mu"), "pm_tce": ("亩均能耗 tce/亩", "Energy per mu tce/mu"),
    "pm_co2": ("亩均排放 tCO2/亩", "CO2 per mu t/mu"),
    "tce_per_10k": ("单位产值能耗 tce/万元", "Energy per output tce/10⁴ yuan"),
    "evaluation": ("亩均效益综合评价", "Per-mu benefit evaluation"), "indicator": ("指标", "Indicator"),
    "value": ("指标值", "Value"), "reference": ("基准/区间", "Benchmark / range"), "weight": ("权重", "Weight"),
    "score": ("得分", "Score"), "note": ("说明", "Note"), "rank": ("排名", "Rank"), "class": ("分类", "Class"),
    "total_score": ("综合得分", "Total score"), "not_evaluated": ("未参评", "Not evaluated"),
    "targets": ("目标与进度", "Targets and progress"), "target": ("目标", "Target"), "actual": ("实际", "Actual"),
    "target_year": ("目标年", "Due"), "progress": ("完成率", "Progress"), "status": ("状态", "Status"),
    "area": ("范围", "Area"), "source": ("来源", "Source"),
    "output_target": ("工业总产值 亿元", "Output value 10⁸ yuan"), "green_park": ("绿色园区", "Green park"),
    "achieved": ("已完成", "achieved"), "on_track": ("推进中", "in progress"), "behind": ("本年到期未完成", "due, not reached"),
    "missed": ("逾期未完成", "missed"), "no_data": ("无数据", "no data"),
    "ranking": ("园区年度综合评价排名", "Annual park assessment ranking"),
    "reward": ("资金奖励", "Reward"), "enterprises": ("入园企业", "Enterprises"),
    "meters": ("数据来源计量器具", "Meters behind the figures"), "device": ("设备", "Device"),
    "role": ("类型", "Role"), "location": ("位置", "Location"), "coverage": ("最低日覆盖率", "Lowest daily coverage"),
    "used_for": ("计入", "Counted in"), "basis": ("计算依据", "Basis"),
    "energy_source": ("能耗数据", "Energy data"), "conv_note": ("能源合计按当量值；单位能耗增加值按等价值。",
                                                          "Energy totals use the equivalent value (当量值); value added "
                                                          "per tce uses the equal value (等价值)."),
    "signature": ("签字", "Signature"), "energy_manager": ("能源管理负责人", "Energy manager"),
    "leader": ("负责人", "Head"), "date": ("日期", "Date"),
    "stored": ("analytics 日能耗记录 (InfluxDB energy)", "analytics daily rows (InfluxDB measurement energy)"),
    "telemetry": ("由计量数据实时重算 (InfluxDB telemetry)", "recomputed from meter readings (InfluxDB telemetry)"),
    "none": ("无计量数据", "no meter data"), "yes": ("是", "yes"), "no": ("否", "no"),
    "grid_factor": ("电网排放因子", "Grid emission factor"), "revision": ("评价配置版本", "Evaluation config"),
    "method": ("评价方法", "Method"), "classes_source": ("分类依据", "Class split"),
    "whole_park": ("全园区", "whole park"),
}


def labels(lang: Lang) -> dict[str, str]:
    """Label key → text in `lang`."""
    i = 0 if lang == "zh" else 1
    return {k: v[i] for k, v in LABELS.items()}
