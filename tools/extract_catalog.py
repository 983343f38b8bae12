#!/usr/bin/env python3
"""Extract Ballast's maturity catalog from the text of the standard's draft.

Source: the 送审稿 (draft for approval) of the financial-industry standard
证券投资基金经营机构运维自动化能力成熟度规范, as plain text (tab-separated table rows).

    python3 tools/extract_catalog.py \\
        --standard ../shared/standard/000_57c8c643fdf53d64.txt \\
        -o data/catalog/jrt-ops-automation-draft.yaml

Python 3 standard library only. The YAML is emitted by hand: every string scalar is written
with json.dumps(..., ensure_ascii=False), which is a valid YAML double-quoted scalar.

All Chinese texts are copied verbatim (typos included). The script never guesses: anything it
cannot parse, and any anomaly of the draft that is not listed in EXPECTED_ANOMALIES below, makes
it exit non-zero with a message naming the table / row / section concerned.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------------
# English names (translations of names only; clause texts are not translated)
# --------------------------------------------------------------------------------------------

NAME_EN: dict[str, str] = {
    # classes (能力类)
    "安全与风险管理": "Security and risk management",
    "工具与平台建设": "Tool and platform building",
    "组织管理": "Organization management",
    "过程管理": "Process management",
    # domains (能力域) and items (能力项)
    "风险防范": "Risk prevention",
    "管理流程与规范": "Management processes and norms",
    "风险控制": "Risk control",
    "风险控制策略": "Risk control strategy",
    "研发管理": "R&D management",
    "运行管理": "Operation management",
    "应急管理": "Emergency management",
    "外包风险管理": "Outsourcing risk management",
    "安全审计": "Security audit",
    "安全合规审计": "Security and compliance audit",
    "功能设计": "Functional design",
    "非功能设计": "Non-functional design",
    "可维护性": "Maintainability",
    "可用性": "Availability",
    "开放性": "Openness",
    "安全设计及可控性": "Security design and controllability",
    "安全设计": "Security design",
    "安全可控性": "Security and controllability",
    "组织架构设计": "Organizational structure design",
    "组织目标管理": "Organizational objective management",
    "人才管理": "Talent management",
    "文化管理": "Culture management",
    "入库管理": "Intake management",
    "资产入库": "Asset intake",
    "上架管理": "Racking management",
    "裸机交付": "Bare-metal delivery",
    "基础资源交付": "Infrastructure resource delivery",
    "计算资源交付": "Compute resource delivery",
    "存储资源交付": "Storage resource delivery",
    "网络资源交付": "Network resource delivery",
    "平台资源交付": "Platform resource delivery",
    "中间件交付": "Middleware delivery",
    "数据库交付": "Database delivery",
    "云资源管理": "Cloud resource management",
    "多云与混合云管理": "Multi-cloud and hybrid-cloud management",
    "环境管理": "Environment management",
    "制品及物料管理": "Artifact and material management",
    "数据管理": "Data management",
    "数据变更管理": "Data change management",
    "部署与发布管理": "Deployment and release management",
    "部署与发布模式": "Deployment and release patterns",
    "部署流水线": "Deployment pipeline",
    "监控管理": "Monitoring management",
    "监控数据采集": "Monitoring data collection",
    "监控数据处理": "Monitoring data processing",
    "监控数据应用": "Monitoring data application",
    "服务巡检": "Service inspection",
    "故障管理": "Fault management",
    "故障发现": "Fault detection",
    "故障定位": "Fault localization",
    "故障处置": "Fault handling",
    "连续性管理": "Continuity management",
    "备份恢复": "Backup and recovery",
    "应急演练": "Emergency drills",
    "容灾切换": "Disaster-recovery switchover",
    "调度与保障": "Scheduling and assurance",
    "流程自动化": "Process automation",
    "资源调度": "Resource scheduling",
    "性能容量管理": "Performance and capacity management",
    "配置管理": "Configuration management",
    "资源模型管理": "Resource model management",
    "资源数据管理": "Resource data management",
    "资源数据运营": "Resource data operations",
    # aspects (table columns)
    "制度管理": "Policy management",
    "环境部署管理": "Environment deployment management",
    "角色权限管理": "Role and permission management",
    "操作管控管理": "Operation control management",
    "需求管理": "Requirements management",
    "开发管理": "Development management",
    "测试管理": "Test management",
    "变更发布管理": "Change and release management",
    "容量管理": "Capacity management",
    "高可用及备份": "High availability and backup",
    "应急预案": "Emergency plans",
    "应急处置": "Emergency response",
    "应急复盘": "Emergency retrospective",
    "入场前管理": "Pre-onboarding management",
    "驻场管理": "On-site management",
    "离场管理": "Offboarding management",
    "审计机制": "Audit mechanism",
    "审计范围": "Audit scope",
    "留痕管理": "Audit-trail management",
    "审计应对": "Audit response",
    "流程管理": "Process management",
    "操作自动化": "Operation automation",
    "运维分析": "Operations analytics",
    "状态监测": "Status monitoring",
    "故障隔离": "Fault isolation",
    "故障恢复": "Fault recovery",
    "架构高可用": "Architectural high availability",
    "可扩展性": "Scalability",
    "资源管控": "Resource control",
    "开放 API": "Open API",
    "平台服务化": "Service-oriented platform",
    "认证与授权": "Authentication and authorization",
    "通信安全": "Communication security",
    "数据安全": "Data security",
    "行为审计": "Behavior audit",
    "攻击防范": "Attack prevention",
    "运行可控": "Operational controllability",
    "研发可控": "R&D controllability",
    "职能设置": "Functional setup",
    "职能协同": "Functional collaboration",
    "架构优化": "Organizational structure optimization",
    "目标制定": "Objective setting",
    "目标执行": "Objective execution",
    "目标考核": "Objective assessment",
    "专业技能": "Professional skills",
    "专业培训": "Professional training",
    "人才储备": "Talent reserve",
    "协作文化": "Collaboration culture",
    "赋能文化": "Enablement culture",
    "持续改进文化": "Continuous improvement culture",
    "策略与规程": "Policies and procedures",
    "管理流程与自动化": "Management processes and automation",
    "资产管理信息化": "Asset information management",
    "安装部署": "Installation and deployment",
    "交付验证": "Delivery verification",
    "部署与配置": "Deployment and configuration",
    "资源交付": "Resource delivery",
    "资源池管理": "Resource pool management",
    "配额及用量管理": "Quota and usage management",
    "成本与计费": "Cost and billing",
    "环境类型": "Environment types",
    "环境构建": "Environment building",
    "环境依赖": "Environment dependencies",
    "制品管理": "Artifact management",
    "物料管理": "Material management",
    "单一可信数据源": "Single source of truth",
    "变更过程": "Change process",
    "兼容回滚": "Compatibility and rollback",
    "数据监控": "Data monitoring",
    "部署方式": "Deployment method",
    "部署过程": "Deployment process",
    "部署策略": "Deployment strategy",
    "部署质量": "Deployment quality",
    "发布管理": "Release management",
    "协作模式": "Collaboration model",
    "流水线过程": "Pipeline process",
    "过程可视化": "Process visualization",
    "监控数据传输": "Monitoring data transmission",
    "监控数据接收": "Monitoring data reception",
    "监控数据加工": "Monitoring data transformation",
    "监控数据存储": "Monitoring data storage",
    "告警与管控": "Alerting and control",
    "数据服务": "Data services",
    "可视化管理": "Visualization management",
    "巡检任务": "Inspection tasks",
    "巡检流程": "Inspection process",
    "巡检可视化": "Inspection visualization",
    "故障监控": "Fault monitoring",
    "故障分析": "Fault analysis",
    "故障响应": "Fault response",
    "故障诊断": "Fault diagnosis",
    "故障总结": "Fault post-mortem",
    "数据备份": "Data backup",
    "数据校验": "Data verification",
    "数据恢复": "Data restoration",
    "方案管理": "Drill plan management",
    "过程执行": "Drill execution",
    "恢复验证": "Recovery verification",
    "评估改进": "Evaluation and improvement",
    "切换执行": "Switchover execution",
    "指挥协同": "Command and coordination",
    "流程场景设计": "Process scenario design",
    "流程支持技术": "Process support technology",
    "流程安全管控": "Process security control",
    "资源分配": "Resource allocation",
    "资源回收": "Resource reclamation",
    "资源监测": "Resource monitoring",
    "容量规划与评估": "Capacity planning and assessment",
    "性能压测": "Performance and load testing",
    "扩缩容管理": "Scaling (scale-out and scale-in) management",
    "资源模型定义": "Resource model definition",
    "资源模型交付": "Resource model delivery",
    "发现与采集": "Discovery and collection",
    "服务流程变更": "Changes via service processes",
    "场景化变更": "Scenario-based changes",
    "运营场景定义": "Operations scenario definition",
    "运营场景实施": "Operations scenario implementation",
    "数据运营与校验": "Data operations and verification",
}

SCALE_KEYS = {
    "6.1": ("technical_management", "Technical management maturity"),
    "6.2": ("technical_application", "Technical application maturity"),
}

LEVEL_NAME_EN = {
    "基础级": "Basic",
    "全面级": "Comprehensive",
    "持续优化级": "Continuously optimizing",
    "初始级": "Initial",
    "先进级": "Advanced",
    "领先级": "Leading",
    "顶尖级": "Top-tier",
}

ALIAS_EN = {
    "脚本化运维": "script-based operations",
    "工具化运维": "tool-based operations",
    "流程工具化运维": "process- and tool-based operations",
    "场景平台化运维": "scenario- and platform-based operations",
    "智能化运维": "intelligent operations",
}

# Items numbered as domains (x.y) although the framework (表1, and 6.1's count of
# "7个能力域，17个能力项") makes them capability items of the preceding domain.
ITEMS_AT_DOMAIN_LEVEL = {"9.2", "9.3"}

# --------------------------------------------------------------------------------------------
# Anomalies
# --------------------------------------------------------------------------------------------

# Every anomaly the script detects must be listed here (and every entry here must be detected);
# a change in the source therefore fails loudly instead of silently producing a different file.
EXPECTED_ANOMALIES: set[tuple[str, str]] = {
    ("T1", "garbled_framework_table"),
    ("T6.2.L1", "unlettered_clause"),
    ("T7", "caption_differs"),
    ("T7.4", "heading_differs_from_caption"),
    ("T9.2.L2.d", "duplicated_text"),
    ("T11", "halfwidth_punctuation"),
    ("8.2.1.1", "duplicate_section_number"),
    ("8.2.1.2", "duplicate_section_number"),
    ("8.2.1.3", "duplicate_section_number"),
    ("9.2", "item_numbered_as_domain"),
    ("9.3", "item_numbered_as_domain"),
    ("10.2.2.2", "section_number_mismatch"),
    ("10.2.2.3", "section_number_mismatch"),
    ("T21.2.L3", "lead_in_sentence"),
    ("T21.3.L3", "lead_in_sentence"),
    ("T21.2.L4", "lead_in_sentence"),
    ("T21.3.L4", "lead_in_sentence"),
    ("T21.2.L5", "lead_in_sentence"),
    ("T21.3.L5", "lead_in_sentence"),
    ("T23", "header_label_differs"),
    ("T24", "header_label_differs"),
    ("T25.3.L3", "lead_in_sentence"),
    ("T25.1.L5.c", "missing_terminal_punctuation"),
    ("T25.3.L5.e", "missing_terminal_punctuation"),
    ("T27.3.L2", "missing_terminal_punctuation"),
    ("T28.4.L3", "note_in_cell"),
    ("T29.2.L4.e", "repeated_letter"),
    ("T30.2.L4.d", "truncated_clause"),
    ("T30.2.L5.i", "repeated_letter"),
    ("T33.3", "duplicated_column"),
    ("T35.4.L4.d", "missing_terminal_punctuation"),
    ("T36.4.L5.d", "split_clause"),
    ("T46", "halfwidth_punctuation"),
    ("T48.1", "heading_differs_from_caption"),
    ("T48.1.L3.a", "missing_terminal_punctuation"),
    ("T49.3.L2.c", "duplicated_text"),
    ("7.2.5.3", "truncated_text"),
    ("10.2.2.3", "intro_term_differs"),
    ("10.5.1.3", "typo_in_intro"),
    ("10.11.3.3", "intro_term_differs"),
    ("10.13.3.1", "typo_in_intro"),
    ("10.14.2.1", "intro_term_differs"),
}

# Anomalies that need a reader's judgement rather than a rule. Each names evidence text that
# must occur in the place it points at (clause text, intro or raw table text), so a note can
# never drift away from what is printed.
MANUAL_ANOMALIES = [
    {
        "where": "T1",
        "kind": "garbled_framework_table",
        "evidence": "能力项\t管理流程与规范\t风险控制策略",
        "note_en": "表1 (the framework of 4 classes, 21 domains and 46 items) is garbled in the text: "
        "columns are shifted, several items are missing (e.g. 故障定位, 应急演练, 资源调度, "
        "资源数据管理, 资源数据运营) and 服务巡检 is orphaned in a row of its own. The catalog "
        "takes classes, domains and items from the section headings of sections 7-10 and "
        "uses 表1 only for the class ordinals 一-四.",
        "note_zh": "表1文本错乱（列错位、缺少若干能力项）；目录以第7-10章标题为准，仅从表1取能力类序号。",
    },
    {
        "where": "T9.2.L2.d",
        "kind": "duplicated_text",
        "evidence": "形成评价报告，并进行评价，形成评价报告",
        "note_en": "The clause repeats the phrase '并进行评价，形成评价报告' twice. Kept verbatim.",
        "note_zh": "条款中“并进行评价，形成评价报告”重复出现，按原文保留。",
    },
    {
        "where": "T30.2.L4.d",
        "kind": "truncated_clause",
        "evidence": "完善的权限模型，并；",
        "note_en": "The clause ends '…完善的权限模型，并；' - the sentence stops after '并'. Kept verbatim.",
        "note_zh": "条款以“并；”结尾，句子不完整，按原文保留。",
    },
    {
        "where": "T36.4.L5.d",
        "kind": "split_clause",
        "evidence": "具备覆盖全业务的统一可视化及；",
        "note_en": "Clause d ends '…统一可视化及；' and clause e reads '智能基线可视化；': one sentence is "
        "printed as two lettered clauses. The catalog keeps the two clauses as printed.",
        "note_zh": "d)“…统一可视化及；”与e)“智能基线可视化；”似为一句被拆成两条，按原文保留为两条。",
    },
    {
        "where": "T49.3.L2.c",
        "kind": "duplicated_text",
        "evidence": "可视化展示 CMDB 中可视化展示 CMDB",
        "note_en": "The clause repeats '可视化展示 CMDB' ('可视化展示 CMDB 中可视化展示 CMDB 的…'). "
        "Kept verbatim.",
        "note_zh": "条款中“可视化展示 CMDB”重复，按原文保留。",
    },
    {
        "where": "7.2.5.3",
        "kind": "truncated_text",
        "evidence": "设备归还和账号权限注。",
        "note_en": "The intro of 离场管理 ends '…设备归还和账号权限注。', apparently cut from "
        "'账号权限注销'. Kept verbatim.",
        "note_zh": "离场管理引言以“账号权限注。”结尾，疑为“注销”缺字，按原文保留。",
    },
    {
        "where": "10.2.2.3",
        "kind": "intro_term_differs",
        "evidence": "设备交付是指",
        "note_en": "The intro of 交付验证 begins '设备交付是指…' instead of naming 交付验证. "
        "Kept verbatim.",
        "note_zh": "交付验证引言以“设备交付是指”开头，与标题不一致，按原文保留。",
    },
    {
        "where": "10.5.1.3",
        "kind": "typo_in_intro",
        "evidence": "配合及用量管理是指",
        "note_en": "The intro of 配额及用量管理 writes '配合及用量管理' (twice) for '配额及用量管理'. "
        "Kept verbatim.",
        "note_zh": "配额及用量管理引言两处误作“配合及用量管理”，按原文保留。",
    },
    {
        "where": "10.11.3.3",
        "kind": "intro_term_differs",
        "evidence": "事后总结是指",
        "note_en": "The intro of 故障总结 begins '事后总结是指…' instead of naming 故障总结. "
        "Kept verbatim.",
        "note_zh": "故障总结引言以“事后总结是指”开头，与标题不一致，按原文保留。",
    },
    {
        "where": "10.13.3.1",
        "kind": "typo_in_intro",
        "evidence": "容量规划与评成熟度要求见表46。",
        "note_en": "The intro of 容量规划与评估 ends '容量规划与评成熟度要求见表46。' (missing '估'). "
        "Kept verbatim.",
        "note_zh": "容量规划与评估引言末句漏“估”字（“容量规划与评成熟度要求”），按原文保留。",
    },
    {
        "where": "10.14.2.1",
        "kind": "intro_term_differs",
        "evidence": "自动采集与发现是指",
        "note_en": "The intro calls the aspect '自动采集与发现', the heading '自动发现与采集' and the "
        "table header '发现与采集'. Kept verbatim.",
        "note_zh": "引言称“自动采集与发现”，标题为“自动发现与采集”，表头为“发现与采集”，按原文保留。",
    },
]

# --------------------------------------------------------------------------------------------
# Errors and small helpers
# --------------------------------------------------------------------------------------------


class ParseError(Exception):
    """The standard's text does not have the shape the extractor relies on."""


def fail(message: str) -> None:
    raise ParseError(message)


MARKUP_RE = re.compile(r"<[^>]*>")
KNOWN_TAGS = {'<ul style="list-style-type: none">', "<p>", "</p>"}
# A clause marker: one lower-case ASCII letter and ")" not preceded by a letter or digit.
MARKER_RE = re.compile(r"(?<![A-Za-z0-9])([a-z])\)")
HEADING_RE = re.compile(r"^(\d+(?:\.\d+)*) (\S.*)$")
CAPTION_RE = re.compile(r"^表\s*(\d+)\s*(\S.*?)(（续）)?$")
PAGE_HEADER_RE = re.compile(r"^JR/T X+-X+$")
INTRO_TABLE_RE = re.compile(r"见表\s*(\d+)。$")
TERMINAL_PUNCTUATION = ("；", "。", ";", ".")
HALFWIDTH_RE = re.compile(r"[\u4e00-\u9fff][,;]")


def strip_markup(raw: str, where: str) -> str:
    for tag in MARKUP_RE.findall(raw):
        if tag not in KNOWN_TAGS:
            fail(f"{where}: unknown markup {tag!r}")
    return MARKUP_RE.sub("", raw)


def letter(index: int) -> str:
    if index >= 26:
        fail(f"clause index {index} beyond 'z'")
    return chr(ord("a") + index)


# --------------------------------------------------------------------------------------------
# Lexing the text into events
# --------------------------------------------------------------------------------------------


@dataclass
class Event:
    kind: str  # heading | para | caption | row
    line: int  # 1-based line number
    text: str = ""
    section: str = ""
    number: int = 0
    continued: bool = False
    fields: list[str] = field(default_factory=list)


BODY_START = "6 运维自动化能力成熟度等级划分"
BODY_END = "参 考 文 献"


def lex(lines: list[str]) -> list[Event]:
    try:
        start = lines.index(BODY_START)
        end = lines.index(BODY_END)
    except ValueError as exc:
        fail(f"cannot find the body of the standard: {exc}")
    events: list[Event] = []
    for index in range(start, end):
        line = lines[index]
        number = index + 1
        if not line.strip() or PAGE_HEADER_RE.match(line):
            continue
        if "\t" in line:
            events.append(Event("row", number, fields=line.split("\t")))
            continue
        caption = CAPTION_RE.match(line)
        if caption:
            events.append(
                Event(
                    "caption",
                    number,
                    text=caption.group(2).strip(),
                    number=int(caption.group(1)),
                    continued=caption.group(3) is not None,
                )
            )
            continue
        heading = HEADING_RE.match(line)
        if heading:
            events.append(Event("heading", number, text=heading.group(2), section=heading.group(1)))
            continue
        if line[0].isdigit():
            fail(f"line {number}: starts with a digit but is neither heading nor row: {line!r}")
        events.append(Event("para", number, text=line))
    return events


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


@dataclass
class Table:
    number: int
    title: str
    line: int
    header: list[str] = field(default_factory=list)
    continued_titles: list[tuple[int, str]] = field(default_factory=list)
    # levels[i] = list of columns; each column = list of raw parts (row, then continuation rows)
    levels: list[list[list[str]]] = field(default_factory=list)


def build_tables(events: list[Event]) -> tuple[dict[int, Table], list]:
    """Group caption/row events into tables; return tables and the event stream with each
    table represented by one ('table', Table) entry."""
    tables: dict[int, Table] = {}
    stream: list = []
    current: Table | None = None
    expect_header = False
    for event in events:
        if event.kind == "caption":
            if event.continued:
                if current is None or current.number != event.number:
                    fail(f"line {event.line}: continuation caption of 表{event.number} "
                         f"outside that table")
                current.continued_titles.append((event.line, event.text))
            else:
                if event.number in tables:
                    fail(f"line {event.line}: 表{event.number} captioned twice")
                current = Table(event.number, event.text, event.line)
                tables[event.number] = current
                stream.append(("table", current))
            expect_header = True
            continue
        if event.kind == "row":
            if current is None:
                fail(f"line {event.line}: table row outside any table")
            if expect_header:
                header = event.fields
                if header[0] not in ("级别", "等级"):
                    fail(f"表{current.number} line {event.line}: expected header row, got "
                         f"{header[0]!r}")
                if not current.header:
                    current.header = header
                elif header != current.header:
                    fail(f"表{current.number} line {event.line}: repeated header row differs "
                         f"from the first one")
                expect_header = False
                continue
            add_row(current, event)
            continue
        if expect_header:
            fail(f"表{current.number if current else '?'} line {event.line}: header row missing")
        current = None
        stream.append((event.kind, event))
    return tables, stream


def add_row(table: Table, event: Event) -> None:
    where = f"表{table.number} line {event.line}"
    if len(event.fields) != len(table.header):
        fail(f"{where}: {len(event.fields)} columns, header has {len(table.header)}")
    level_field, cells = event.fields[0], event.fields[1:]
    if level_field == "":
        if not table.levels:
            fail(f"{where}: continuation row before any level row")
        for column, cell in enumerate(cells):
            table.levels[-1][column].append(cell)
        return
    expected = str(len(table.levels) + 1)
    if level_field != expected:
        fail(f"{where}: level column {level_field!r}, expected {expected!r}")
    table.levels.append([[cell] for cell in cells])


def joined_cell(parts: list[str], where: str) -> str:
    """A cell's text: markup removed, continuation parts joined directly (no separator)."""
    return "".join(strip_markup(part, where).strip() for part in parts)


@dataclass
class Clause:
    printed: str
    text: str


@dataclass
class Cell:
    clauses: list[Clause]
    notes: list[str]
    in_list_markup: bool


def parse_cell(parts: list[str], where: str) -> Cell:
    text = joined_cell(parts, where)
    if not text:
        fail(f"{where}: empty cell")
    markers = list(MARKER_RE.finditer(text))
    notes: list[str] = []
    clauses: list[Clause] = []
    if not markers:
        clauses.append(Clause("", text))
    else:
        lead = text[: markers[0].start()].strip()
        if lead:
            if not lead.endswith("："):
                fail(f"{where}: text before the first clause marker is not a lead-in: {lead!r}")
            notes.append(lead)
        for i, marker in enumerate(markers):
            stop = markers[i + 1].start() if i + 1 < len(markers) else len(text)
            body = text[marker.end() : stop].strip()
            if not body:
                fail(f"{where}: empty clause {marker.group(1)})")
            clauses.append(Clause(marker.group(1), body))
    last = clauses[-1]
    if "注：" in last.text:
        body, note = last.text.split("注：", 1)
        last.text = body.strip()
        notes.append("注：" + note.strip())
    for clause in clauses:
        if "注：" in clause.text:
            fail(f"{where}: '注：' inside a clause that is not the last one")
    in_list = any("<ul" in part for part in parts)
    return Cell(clauses, notes, in_list)


# --------------------------------------------------------------------------------------------
# Document structure
# --------------------------------------------------------------------------------------------


@dataclass
class Heading:
    section: str
    title: str
    line: int
    paras: list[str] = field(default_factory=list)

    @property
    def depth(self) -> int:
        return self.section.count(".") + 1


class Extractor:
    def __init__(self, text: str):
        self.text = text
        self.lines = text.split("\n")
        self.anomalies: list[dict] = []
        self.seen_sections: set[str] = set()

    # ----- anomalies -----

    def anomaly(self, where: str, kind: str, note_en: str, note_zh: str) -> None:
        self.anomalies.append({"where": where, "kind": kind, "note_en": note_en, "note_zh": note_zh})

    # ----- main -----

    def run(self) -> dict:
        tables, stream = build_tables(lex(self.lines))
        numbers = sorted(tables)
        if numbers != list(range(2, 50)):
            fail(f"tables found: {numbers}; expected 表2..表49 (表1 precedes section 6)")
        ordinals = self.class_ordinals()
        scales: list[dict] = []
        classes: list[dict] = []
        pending: list[Heading] = []
        current_class: dict | None = None
        current_domain: dict | None = None
        for kind, obj in stream:
            if kind == "heading":
                heading = Heading(obj.section, obj.text, obj.line)
                pending.append(heading)
                continue
            if kind == "para":
                if not pending:
                    fail(f"line {obj.line}: paragraph before any heading")
                pending[-1].paras.append(obj.text)
                continue
            table: Table = obj
            if table.number in (2, 3):
                scales.append(self.scale(table, pending))
                pending = []
                continue
            # structural headings before the item
            aspects_start = len(pending)
            while aspects_start > 0 and pending[aspects_start - 1].paras:
                aspects_start -= 1
            aspect_headings = pending[aspects_start:]
            if aspects_start == 0:
                fail(f"表{table.number}: no capability-item heading before the aspect headings")
            item_heading = pending[aspects_start - 1]
            for heading in pending[: aspects_start - 1]:
                if heading.paras:
                    fail(f"section {heading.section}: unexpected paragraph under a class/domain")
                if heading.depth == 1:
                    current_class = self.new_class(heading, ordinals)
                    classes.append(current_class)
                    current_domain = None
                elif heading.depth == 2:
                    if current_class is None or not heading.section.startswith(
                        current_class["section"] + "."
                    ):
                        fail(f"section {heading.section}: domain outside its class")
                    current_domain = self.new_domain(heading)
                    current_class["domains"].append(current_domain)
                else:
                    fail(f"section {heading.section}: unexpected heading before 表{table.number}")
            if current_class is None or current_domain is None:
                fail(f"表{table.number}: no class/domain before the item")
            self.check_item_heading(item_heading, current_domain, table)
            item = self.item(table, item_heading, aspect_headings, current_class)
            current_domain["items"].append(item)
            for heading in pending:
                self.seen_sections.add(heading.section)
            pending = []
        if pending:
            fail(f"headings after the last table: {[h.section for h in pending]}")
        self.check_columns_duplicated(classes)
        self.add_manual_anomalies(classes)
        self.check_expected()
        return {"scales": scales, "classes": classes, "anomalies": self.sorted_anomalies(classes)}

    # ----- classes / domains / items -----

    def class_ordinals(self) -> dict[str, str]:
        ordinals = {}
        for line in self.lines:
            match = re.match(r"^能力类\t([一二三四])、([^\t]+)", line)
            if match:
                ordinals[match.group(2)] = match.group(1)
        if len(ordinals) != 4:
            fail(f"表1: expected 4 能力类 rows, found {ordinals}")
        return ordinals

    def new_class(self, heading: Heading, ordinals: dict[str, str]) -> dict:
        if heading.title not in ordinals:
            fail(f"section {heading.section}: class {heading.title!r} not in 表1")
        scale = "technical_application" if heading.section == "10" else "technical_management"
        return {
            "ordinal_zh": ordinals[heading.title],
            "name_zh": heading.title,
            "name_en": english(heading.title, heading.section),
            "section": heading.section,
            "scale": scale,
            "domains": [],
        }

    def new_domain(self, heading: Heading) -> dict:
        return {
            "name_zh": heading.title,
            "name_en": english(heading.title, heading.section),
            "section": heading.section,
            "items": [],
        }

    def check_item_heading(self, heading: Heading, domain: dict, table: Table) -> None:
        if heading.depth == 3:
            if not heading.section.startswith(domain["section"] + "."):
                fail(f"表{table.number}: item {heading.section} not under domain "
                     f"{domain['section']}")
            return
        if heading.depth == 2 and heading.section in ITEMS_AT_DOMAIN_LEVEL:
            self.anomaly(
                heading.section,
                "item_numbered_as_domain",
                f"{heading.section} {heading.title} is numbered like a capability domain, but "
                f"表1 and 6.1 ('7个能力域，17个能力项') make it a capability item of domain "
                f"{domain['section']} {domain['name_zh']}; its aspects are numbered "
                f"{heading.section}.1, {heading.section}.2, …. The catalog lists it as an item of "
                f"{domain['name_zh']} with section \"{heading.section}\".",
                f"{heading.section} {heading.title}按能力域编号，但表1及6.1将其列为"
                f"{domain['name_zh']}能力域下的能力项；目录按能力项处理，章节号保留原文。",
            )
            return
        fail(f"表{table.number}: item heading {heading.section} {heading.title} at an "
             f"unexpected depth")

    def item(self, table: Table, heading: Heading, aspects: list[Heading], cls: dict) -> dict:
        t = table.number
        expected_levels = 5 if cls["section"] == "10" else 3
        if len(table.levels) != expected_levels:
            fail(f"表{t}: {len(table.levels)} level rows, expected {expected_levels}")
        if table.header[0] != "级别":
            self.anomaly(
                f"T{t}",
                "header_label_differs",
                f"The first header cell of 表{t} reads '{table.header[0]}' instead of '级别'. "
                f"Both mean 'level'; the catalog reads the column as the level column.",
                f"表{t}表头首列为“{table.header[0]}”而非“级别”，目录按级别列处理。",
            )
        item_title = heading.title
        if table.title != item_title + "成熟度要求":
            self.anomaly(
                f"T{t}",
                "heading_differs_from_caption",
                f"Caption '{table.title}' does not match heading {heading.section} '{item_title}'.",
                f"表题“{table.title}”与标题“{item_title}”不一致。",
            )
        for line, title in table.continued_titles:
            if title != table.title:
                self.anomaly(
                    f"T{t}",
                    "caption_differs",
                    f"The continuation caption (line {line}) reads '表 {t} {title}（续）' while the "
                    f"table's caption is '表 {t} {table.title}'. The catalog uses the first caption "
                    f"and heading {heading.section}.",
                    f"续表表题为“{title}”，与表题“{table.title}”不一致；目录以首个表题为准。",
                )
        columns = table.header[1:]
        if len(columns) != len(aspects):
            fail(f"表{t}: {len(columns)} header columns but {len(aspects)} aspect subsections "
                 f"({[a.section for a in aspects]})")
        aspect_dicts = []
        for index, (column_name, aspect) in enumerate(zip(columns, aspects)):
            aspect_dicts.append(self.aspect(table, heading, index + 1, column_name, aspect))
        self.check_halfwidth(table, aspect_dicts)
        return {
            "table": t,
            "section": heading.section,
            "name_zh": item_title,
            "name_en": english(item_title, heading.section),
            "levels": len(table.levels),
            "aspects": aspect_dicts,
            "notes_zh": [],
        }

    def aspect(self, table: Table, item: Heading, column: int, name: str, heading: Heading) -> dict:
        t = table.number
        expected_section = f"{item.section}.{column}"
        if heading.section != expected_section:
            if heading.section in self.seen_sections:
                self.anomaly(
                    heading.section,
                    "duplicate_section_number",
                    f"The subsection for aspect '{heading.title}' of item {item.section} "
                    f"{item.title} (表{t}) is numbered {heading.section}, a number already used "
                    f"earlier; by position it should be {expected_section}. The catalog keeps "
                    f"the printed number.",
                    f"{item.section}{item.title}的“{heading.title}”小节编号为{heading.section}，"
                    f"与前文重复（应为{expected_section}），目录保留原编号。",
                )
            else:
                self.anomaly(
                    heading.section,
                    "section_number_mismatch",
                    f"The subsection for aspect '{heading.title}' of item {item.section} "
                    f"{item.title} (表{t}) is numbered {heading.section}; by position it should "
                    f"be {expected_section} (there is no item {heading.section.rsplit('.', 1)[0]}). "
                    f"The catalog keeps the printed number.",
                    f"{item.section}{item.title}的“{heading.title}”小节编号为{heading.section}，"
                    f"应为{expected_section}，目录保留原编号。",
                )
        self.seen_sections.add(heading.section)
        if heading.title != name:
            self.anomaly(
                f"T{t}.{column}",
                "heading_differs_from_caption",
                f"Subsection {heading.section} is headed '{heading.title}' but column {column} of "
                f"表{t} reads '{name}'. The catalog uses the table header as name_zh.",
                f"小节标题“{heading.title}”与表{t}第{column}列表头“{name}”不一致，"
                f"目录以表头为准。",
            )
        intro = "\n".join(heading.paras)
        reference = INTRO_TABLE_RE.search(heading.paras[-1])
        if reference is None or int(reference.group(1)) != t:
            fail(f"section {heading.section}: intro does not end by referring to 表{t}")
        cells = []
        for level_index, level in enumerate(table.levels):
            level_no = level_index + 1
            cells.append(self.cell(t, column, level_no, level[column - 1]))
        return {
            "column": column,
            "name_zh": name,
            "name_en": english(name, heading.section),
            "section": heading.section,
            "intro_zh": intro,
            "cells": cells,
        }

    def cell(self, t: int, column: int, level: int, parts: list[str]) -> dict:
        cell_id = f"T{t}.{column}.L{level}"
        parsed = parse_cell(parts, f"表{t} column {column} level {level} ({cell_id})")
        clauses = []
        for index, clause in enumerate(parsed.clauses):
            position = letter(index)
            clause_id = f"{cell_id}.{position}"
            self.check_letter(clause_id, position, clause.printed, parsed)
            if not clause.text.endswith(TERMINAL_PUNCTUATION):
                where = clause_id if clause.printed else cell_id
                self.anomaly(
                    where,
                    "missing_terminal_punctuation",
                    f"The clause ends '…{clause.text[-6:]}' without '；' or '。'. Kept verbatim.",
                    f"条款末尾无“；”或“。”，按原文保留。",
                )
            clauses.append({"id": clause_id, "printed_letter": clause.printed, "text_zh": clause.text})
        for note in parsed.notes:
            if note.startswith("注："):
                self.anomaly(
                    cell_id,
                    "note_in_cell",
                    f"The cell holds a note after its last clause: '{note}'. It is not a "
                    f"requirement clause; the catalog keeps it in the cell's notes_zh.",
                    f"单元格内含注：“{note}”，不作为条款，保存在notes_zh中。",
                )
            else:
                self.anomaly(
                    cell_id,
                    "lead_in_sentence",
                    f"The cell opens with the unlettered lead-in '{note}' before its lettered "
                    f"clauses. It is not a clause; the catalog keeps it in the cell's notes_zh.",
                    f"单元格以引导语“{note}”开头，不作为条款，保存在notes_zh中。",
                )
        return {"level": level, "clauses": clauses, "notes_zh": parsed.notes}

    def check_letter(self, clause_id: str, position: str, printed: str, cell: Cell) -> None:
        if printed == "":
            if cell.in_list_markup:
                self.anomaly(
                    clause_id.rsplit(".", 1)[0],
                    "unlettered_clause",
                    "The cell is printed as a list (list markup) holding one sentence without a "
                    "letter. The catalog makes it clause 'a' with printed_letter \"\".",
                    "单元格为列表格式但唯一一句未编字母，目录作为条款a，printed_letter为空。",
                )
            return
        if printed == position:
            return
        kind = "repeated_letter" if printed < position else "skipped_letter"
        verb = "repeats an earlier letter" if printed < position else "skips letters"
        self.anomaly(
            clause_id,
            kind,
            f"The clause in position '{position}' is printed with letter '{printed})' ({verb}). "
            f"The catalog keeps printed_letter \"{printed}\" and numbers it by position: "
            f"{clause_id}.",
            f"第{ord(position) - ord('a') + 1}条印为“{printed})”，目录按位置编号为{clause_id}。",
        )

    def check_halfwidth(self, table: Table, aspects: list[dict]) -> None:
        count = sum(
            len(HALFWIDTH_RE.findall(clause["text_zh"]))
            for aspect in aspects
            for cell in aspect["cells"]
            for clause in cell["clauses"]
        )
        if count:
            self.anomaly(
                f"T{table.number}",
                "halfwidth_punctuation",
                f"表{table.number} uses half-width ',' / ';' after Chinese text ({count} times) "
                f"where the other tables use '，' / '；'. Kept verbatim.",
                f"表{table.number}使用半角“,”“;”（共{count}处），按原文保留。",
            )

    def check_columns_duplicated(self, classes: list[dict]) -> None:
        for item in iter_items(classes):
            texts = [
                [[c["text_zh"] for c in cell["clauses"]] for cell in aspect["cells"]]
                for aspect in item["aspects"]
            ]
            for later in range(len(texts)):
                for earlier in range(later):
                    if texts[later] == texts[earlier]:
                        a_name = item["aspects"][earlier]["name_zh"]
                        b_name = item["aspects"][later]["name_zh"]
                        self.anomaly(
                            f"T{item['table']}.{later + 1}",
                            "duplicated_column",
                            f"Column {later + 1} ({b_name}) of 表{item['table']} repeats the text "
                            f"of column {earlier + 1} ({a_name}) at every level, apparently a "
                            f"copy-paste slip. Kept verbatim.",
                            f"表{item['table']}“{b_name}”列各级内容与“{a_name}”列完全相同，"
                            f"疑为误复制，按原文保留。",
                        )

    def add_manual_anomalies(self, classes: list[dict]) -> None:
        clause_text = {
            clause["id"]: clause["text_zh"]
            for item in iter_items(classes)
            for aspect in item["aspects"]
            for cell in aspect["cells"]
            for clause in cell["clauses"]
        }
        intro_text = {
            aspect["section"]: aspect["intro_zh"]
            for item in iter_items(classes)
            for aspect in item["aspects"]
        }
        for entry in MANUAL_ANOMALIES:
            where, evidence = entry["where"], entry["evidence"]
            if where == "T1":
                found = evidence in self.text
            elif where in clause_text:
                found = evidence in clause_text[where]
            elif where in intro_text:
                found = evidence in intro_text[where]
            else:
                fail(f"manual anomaly {where} {entry['kind']}: no such clause or section")
            if not found:
                fail(f"manual anomaly {where} {entry['kind']}: evidence {evidence!r} not found")
            self.anomaly(where, entry["kind"], entry["note_en"], entry["note_zh"])

    def check_expected(self) -> None:
        found = [(a["where"], a["kind"]) for a in self.anomalies]
        duplicates = {pair for pair in found if found.count(pair) > 1}
        if duplicates:
            fail(f"anomalies recorded twice: {sorted(duplicates)}")
        unexpected = set(found) - EXPECTED_ANOMALIES
        missing = EXPECTED_ANOMALIES - set(found)
        if unexpected or missing:
            fail(f"anomalies differ from EXPECTED_ANOMALIES: unexpected {sorted(unexpected)}, "
                 f"not found {sorted(missing)}")

    def sorted_anomalies(self, classes: list[dict]) -> list[dict]:
        section_key: dict[str, tuple] = {}
        for item in iter_items(classes):
            section_key[item["section"]] = (item["table"], 0)
            for aspect in item["aspects"]:
                section_key[aspect["section"]] = (item["table"], aspect["column"])

        def key(anomaly: dict) -> tuple:
            where = anomaly["where"]
            match = re.match(r"^T(\d+)(?:\.(\d+))?(?:\.L(\d+))?(?:\.([a-z]))?$", where)
            if match:
                t, a, lvl, x = match.groups()
                return (int(t), int(a or 0), int(lvl or 0), x or "", 1, where)
            if where in section_key:
                t, a = section_key[where]
                return (t, a, 0, "", 0, where)
            fail(f"anomaly location {where!r} cannot be placed")
            return ()

        return sorted(self.anomalies, key=key)

    # ----- scales -----

    def scale(self, table: Table, pending: list[Heading]) -> dict:
        if not pending or pending[-1].section not in SCALE_KEYS:
            fail(f"表{table.number}: expected directly under section 6.1 / 6.2")
        heading = pending[-1]
        key, name_en = SCALE_KEYS[heading.section]
        if table.header != ["级别", "名称", "内容"]:
            fail(f"表{table.number}: unexpected header {table.header}")
        expected = 3 if table.number == 2 else 5
        if len(table.levels) != expected:
            fail(f"表{table.number}: {len(table.levels)} levels, expected {expected}")
        levels = []
        for index, (name_parts, content_parts) in enumerate(table.levels):
            where = f"表{table.number} level {index + 1}"
            raw_name = joined_cell(name_parts, where)
            match = re.match(r"^(\S+?)(?:\s*\((.+)\))?$", raw_name)
            if not match:
                fail(f"{where}: cannot read level name {raw_name!r}")
            name, alias = match.group(1), match.group(2)
            if (alias is None) != (table.number == 2):
                fail(f"{where}: alias presence unexpected for {raw_name!r}")
            cell = parse_cell(content_parts, where)
            if cell.notes:
                fail(f"{where}: unexpected notes {cell.notes}")
            for i, clause in enumerate(cell.clauses):
                if clause.printed != letter(i):
                    fail(f"{where}: item {i + 1} printed as {clause.printed!r}")
            levels.append({
                "level": index + 1,
                "name_zh": name,
                "name_en": lookup(LEVEL_NAME_EN, name, where),
                "alias_zh": alias,
                "alias_en": lookup(ALIAS_EN, alias, where) if alias else None,
                "description_zh": [clause.text for clause in cell.clauses],
            })
        return {
            "key": key,
            "name_zh": heading.title,
            "name_en": name_en,
            "section": heading.section,
            "table": table.number,
            "levels": levels,
        }


def iter_items(classes: list[dict]):
    for cls in classes:
        for domain in cls["domains"]:
            yield from domain["items"]


def lookup(table: dict[str, str], key: str, where: str) -> str:
    if key not in table:
        fail(f"{where}: no English name for {key!r}")
    return table[key]


def english(name: str, section: str) -> str:
    return lookup(NAME_EN, name, f"section {section}")


# --------------------------------------------------------------------------------------------
# YAML emission
# --------------------------------------------------------------------------------------------

HEADER_COMMENT = """\
# Maturity catalog of 证券投资基金经营机构运维自动化能力成熟度规范 (JR/T draft, 送审稿):
# "Capability maturity specification for operation automation in securities and fund
# management institutions" - the level scales of section 6 (表2, 表3) and the capability
# items of sections 7-10 (表4-表49) with their aspects and lettered requirement clauses.
#
# GENERATED FILE - do not edit by hand. Regenerate with
#   python3 tools/extract_catalog.py --standard ../shared/standard/000_57c8c643fdf53d64.txt \\
#       -o data/catalog/jrt-ops-automation-draft.yaml
#
# All Chinese texts (*_zh) are verbatim from the draft text, typos included; markup, clause
# letters and page breaks are removed. Clause ids are T{table}.{aspect column}.L{level}.{letter}
# with the letter by position in the cell. Deviations of the draft are listed under `anomalies`.
# English names (*_en) are translations of names only.
"""


def q(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


class Yaml:
    def __init__(self) -> None:
        self.out: list[str] = []

    def line(self, indent: int, text: str) -> None:
        self.out.append("  " * indent + text)

    def str_list(self, indent: int, key: str, values: list[str]) -> None:
        if not values:
            self.line(indent, f"{key}: []")
            return
        self.line(indent, f"{key}:")
        for value in values:
            self.line(indent + 1, f"- {q(value)}")

    def mapping_item(self, indent: int, pairs: list[tuple[str, object]]) -> None:
        """Scalar pairs of one mapping inside a sequence, starting with '- '."""
        for i, (key, value) in enumerate(pairs):
            if i == 0:
                self.line(indent, f"- {key}: {q(value)}")
            else:
                self.line(indent + 1, f"{key}: {q(value)}")


def emit(doc: dict) -> str:
    y = Yaml()
    y.out.append(HEADER_COMMENT.rstrip("\n"))
    y.line(0, "schema: 1")
    y.line(0, f"id: {q('jrt-ops-automation-maturity')}")
    y.line(0, f"version: {q('draft-2024-songshen')}")
    y.line(0, f"title_zh: {q('证券投资基金经营机构运维自动化能力成熟度规范')}")
    y.line(0, "title_en: " + q("Capability maturity specification for operation automation in "
                               "securities and fund management institutions"))
    y.line(0, f"edition_zh: {q('送审稿')}")
    y.line(0, "scales:")
    for scale in doc["scales"]:
        y.mapping_item(1, [(k, scale[k]) for k in ("key", "name_zh", "name_en", "section", "table")])
        y.line(2, "levels:")
        for level in scale["levels"]:
            y.mapping_item(3, [(k, level[k]) for k in
                               ("level", "name_zh", "name_en", "alias_zh", "alias_en")])
            y.str_list(4, "description_zh", level["description_zh"])
    y.line(0, "classes:")
    for cls in doc["classes"]:
        y.mapping_item(1, [(k, cls[k]) for k in
                           ("ordinal_zh", "name_zh", "name_en", "section", "scale")])
        y.line(2, "domains:")
        for domain in cls["domains"]:
            y.mapping_item(3, [(k, domain[k]) for k in ("name_zh", "name_en", "section")])
            y.line(4, "items:")
            for item in domain["items"]:
                y.mapping_item(5, [(k, item[k]) for k in
                                   ("table", "section", "name_zh", "name_en", "levels")])
                y.line(6, "aspects:")
                for aspect in item["aspects"]:
                    y.mapping_item(7, [(k, aspect[k]) for k in
                                       ("column", "name_zh", "name_en", "section", "intro_zh")])
                    y.line(8, "cells:")
                    for cell in aspect["cells"]:
                        y.mapping_item(9, [("level", cell["level"])])
                        y.line(10, "clauses:")
                        for clause in cell["clauses"]:
                            y.mapping_item(11, [(k, clause[k]) for k in
                                                ("id", "printed_letter", "text_zh")])
                        y.str_list(10, "notes_zh", cell["notes_zh"])
                y.str_list(6, "notes_zh", item["notes_zh"])
    y.line(0, "anomalies:")
    for anomaly in doc["anomalies"]:
        y.mapping_item(1, [(k, anomaly[k]) for k in ("where", "kind", "note_en", "note_zh")])
    return "\n".join(y.out) + "\n"


# --------------------------------------------------------------------------------------------
# Summary checks and CLI
# --------------------------------------------------------------------------------------------


def check_counts(doc: dict) -> dict[str, int]:
    classes = doc["classes"]
    domains = [d for c in classes for d in c["domains"]]
    items = list(iter_items(classes))
    aspects = [a for i in items for a in i["aspects"]]
    clauses = [cl for a in aspects for cell in a["cells"] for cl in cell["clauses"]]
    counts = {"classes": len(classes), "domains": len(domains), "items": len(items),
              "aspects": len(aspects), "clauses": len(clauses)}
    if (counts["classes"], counts["domains"], counts["items"]) != (4, 21, 46):
        fail(f"framework counts {counts}, expected 4 classes, 21 domains, 46 items")
    if [i["table"] for i in items] != list(range(4, 50)):
        fail("items are not 表4..表49 in order")
    ids = [cl["id"] for cl in clauses]
    if len(ids) != len(set(ids)):
        fail("duplicate clause ids")
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--standard", required=True, help="path to the standard's text file")
    parser.add_argument("-o", "--output", required=True, help="YAML file to write")
    args = parser.parse_args(argv)
    try:
        with open(args.standard, encoding="utf-8") as handle:
            text = handle.read()
        doc = Extractor(text).run()
        counts = check_counts(doc)
    except (ParseError, OSError, UnicodeDecodeError) as exc:
        print(f"extract_catalog: error: {exc}", file=sys.stderr)
        return 1
    with open(args.output, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(emit(doc))
    summary = ", ".join(f"{v} {k}" for k, v in counts.items())
    print(f"extract_catalog: wrote {args.output}: {summary}, {len(doc['anomalies'])} anomalies",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
