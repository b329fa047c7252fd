"""The monitoring files in deploy/: Prometheus's config and alert rules, Grafana's
provisioning and dashboards.

promtool checks the config and rules and runs the alerts' unit tests, and every query is
held against the metrics the worker really exports (``streams.metrics`` in the default
registry), so that a renamed metric or label fails here rather than leaving an empty graph
or an alert that can never fire. None of these tests needs a server; the promtool ones
fail, not skip, when promtool is missing, since a skipped check looks like a passing one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

import streams.metrics
from tests.support import ROOT

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "tagger.yml"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DASHBOARDS = {
    "tagger-oncall.json": "Tagger / on-call",
    "tagger-operations.json": "Tagger / operations",
}
COMPOSE_FILE = ROOT / "docker-compose.yml"

JOB = "tagger"
DATASOURCE_UID = "prometheus"
# Where Grafana's provider loads dashboards from: docker-compose (and any other deployment)
# must mount deploy/grafana/dashboards here.
GRAFANA_DASHBOARDS_PATH = "/var/lib/grafana/dashboards"
SEVERITIES = {"page", "ticket"}

# Series Prometheus makes itself rather than scraping them from the worker.
PROMETHEUS_SERIES: Mapping[str, frozenset[str]] = {"up": frozenset()}
# Labels Prometheus attaches to every scraped series: the target's, plus the pod and
# namespace that the Kubernetes example in prometheus.yml relabels in.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod"})

# The samples each metric type exposes, as suffixes of the family's name.
SAMPLE_SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}


# promtool -------------------------------------------------------------------------------


def run_promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    """Run promtool, failing the test (not skipping it) when it is not installed."""
    executable = shutil.which("promtool")
    if executable is None:
        pytest.fail(
            "promtool is not installed (it comes with the prometheus package): "
            "run scripts/setup.sh",
            pytrace=False,
        )
    return subprocess.run(
        [executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> str:
    """Run promtool and return its output; fail with that output when it does not pass."""
    result = run_promtool(*args, cwd=cwd)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def load_yaml(path: Path) -> Any:
    """A YAML file's content, failing the test with the file's name when it does not parse."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        pytest.fail(f"{path.relative_to(ROOT)}: {error}")


def test_prometheus_config_is_valid() -> None:
    """promtool accepts the config, including the rule files it names, which it also
    resolves and checks (relative to the config, as Prometheus does in the container)."""
    output = promtool("check", "config", PROMETHEUS_CONFIG.name)
    assert "1 rule files found" in output, output


def test_prometheus_config_scrapes_the_workers() -> None:
    """The job name, targets and rule file are what the alerts, dashboards and
    docker-compose rely on: up{job="tagger"}, the workers' web port, /etc/prometheus."""
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["global"]["scrape_interval"] == "15s"
    # Relative: resolved against the config's directory, so it is alerts.yml next to it
    # both here and at /etc/prometheus in the container.
    assert config["rule_files"] == [ALERTS.name]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert JOB in jobs, f"no scrape job {JOB!r}: the alerts and dashboards select job={JOB!r}"
    tagger = jobs[JOB]
    assert tagger.get("metrics_path", "/metrics") == "/metrics"
    targets = [target for group in tagger["static_configs"] for target in group["targets"]]
    assert targets == ["worker-1:6066", "worker-2:6066"]


def kubernetes_example() -> list[Any]:
    """The commented-out Kubernetes scrape job of prometheus.yml, uncommented and parsed."""
    text = PROMETHEUS_CONFIG.read_text(encoding="utf-8")
    found = re.search(r"# BEGIN kubernetes example\n(.*?)\n\s*# END kubernetes example", text, re.S)
    assert found, "prometheus.yml: the '# BEGIN/END kubernetes example' markers are missing"
    lines = [re.sub(r"^\s*# ?", "", line) for line in found.group(1).splitlines()]
    example = yaml.safe_load("\n".join(lines))
    assert isinstance(example, list), "the Kubernetes example should be a list of scrape jobs"
    return example


def test_kubernetes_example_is_valid(tmp_path: Path) -> None:
    """The commented Kubernetes job is what someone will paste in: it must be a valid
    scrape config, keep the job name and select the worker pods by their label."""
    example = kubernetes_example()
    (job,) = example
    assert job["job_name"] == JOB
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    keep = [
        rule
        for rule in job["relabel_configs"]
        if rule.get("action") == "keep"
        and rule["source_labels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
    ]
    assert keep and keep[0]["regex"] == "tagger", keep
    added = {rule["target_label"] for rule in job["relabel_configs"] if "target_label" in rule}
    assert added <= TARGET_LABELS, f"add {added - TARGET_LABELS} to TARGET_LABELS"

    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump({"scrape_configs": example}), encoding="utf-8")
    result = run_promtool("check", "config", str(path), cwd=tmp_path)
    if "field kubernetes_sd_configs not found" in result.stdout + result.stderr:
        # Debian's Prometheus is built without Kubernetes discovery: check the rest of the
        # job (relabelling actions and regexes) with the discovery swapped for a static list.
        del job["kubernetes_sd_configs"]
        job["static_configs"] = [{"targets": ["pod:6066"]}]
        path.write_text(yaml.safe_dump({"scrape_configs": example}), encoding="utf-8")
        promtool("check", "config", str(path), cwd=tmp_path)
    else:
        assert result.returncode == 0, result.stdout + result.stderr


# Alert rules ----------------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml."""
    groups = load_yaml(ALERTS)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_alert_rules_are_valid() -> None:
    """promtool parses every rule and its PromQL, and finds no duplicate."""
    promtool("check", "rules", ALERTS.name)


def test_alert_rules_pass_their_unit_tests() -> None:
    """alerts_test.yml feeds series to the rules and expects each alert (labels and
    rendered annotations) to fire, or to stay quiet, at given times."""
    promtool("test", "rules", ALERTS_TEST.name)


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """An alert tested only where it fires may fire all the time, and one tested only
    where it is quiet may never fire: each needs both."""
    firing: set[str] = set()
    quiet: set[str] = set()
    tests = load_yaml(ALERTS_TEST)
    assert tests["rule_files"] == [ALERTS.name]
    for group in tests["tests"]:
        for check in group.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    problems = [f"{name}: no test where it fires" for name in sorted(names - firing)]
    problems += [f"{name}: no test where it stays quiet" for name in sorted(names - quiet)]
    problems += [
        f"{name}: tested but not in alerts.yml"
        for name in sorted(firing | quiet)
        if name not in names
    ]
    assert not problems, "alerts_test.yml:\n" + "\n".join(problems)


def test_alerts_tell_the_on_call_engineer_what_to_do() -> None:
    """Routing needs a severity; the person paged needs a summary and what to check."""
    required = {
        "TaggerLagGrowing",
        "TaggerDeadLettersHigh",
        "TaggerRedisDown",
        "TaggerRedisErrors",
        "TaggerNoEvents",
        "TaggerRuleReloadRejected",
        "TaggerWorkerDown",
    }
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    assert required <= set(names), f"missing alerts: {sorted(required - set(names))}"
    for rule in rules:
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        annotations = rule.get("annotations", {})
        assert annotations.get("summary", "").strip(), f"{name}: no summary"
        assert len(annotations.get("description", "")) >= 80, f"{name}: say what to check"
    by_name = {rule["alert"]: rule for rule in rules}
    assert "behaviour-events-dlq" in by_name["TaggerDeadLettersHigh"]["annotations"]["description"]
    assert (
        "tagger rules status" in by_name["TaggerRuleReloadRejected"]["annotations"]["description"]
    )


# PromQL: the metric names and labels a query uses -----------------------------------------

# fmt: off
# Functions and aggregation operators of PromQL (Prometheus 2.42): the names a query may
# call. An identifier followed by "(" that is not here is a typo, reported as unknown.
PROMQL_FUNCTIONS = frozenset(
    [
        "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
        "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
        "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
        "delta", "deriv", "end", "exp", "floor", "histogram_count", "histogram_fraction",
        "histogram_quantile", "histogram_sum", "holt_winters", "hour", "idelta", "increase",
        "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
        "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
        "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar",
        "sgn", "sin", "sinh", "sort", "sort_desc", "sqrt", "start", "stddev_over_time",
        "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
        "avg", "bottomk", "count", "count_values", "group", "max", "min", "quantile", "stddev",
        "stdvar", "sum", "topk"
    ]
)
# Words of PromQL that are neither functions nor metric names.
PROMQL_KEYWORDS = frozenset(
    [
        "and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left",
        "group_right", "offset", "atan2", "inf", "nan"
    ]
)
# fmt: on
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
GRAFANA_VARIABLE = re.compile(r"\$(?:\{[^}]*\}|\w+)")
RANGE = re.compile(r"\[[^\]]*\]")  # a range or subquery: [5m], [15m:1m], [$__rate_interval]
OFFSET = re.compile(r"\boffset\s+-?[0-9a-zA-Z]+")
AT_MODIFIER = re.compile(r"@\s*[0-9.]+")
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^{}]*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
# An identifier not glued to a preceding name or number (so the e3 of 1e3 is not one),
# and whether a "(" follows it (then it is a function).
IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")


@dataclass
class PromQL:
    """What one query uses: metric names, functions, and where it needs labels.

    ``labels`` holds (label, metrics that must have it, how it is used): a matcher needs
    the label on its metric; ``by``/``without`` on every metric it aggregates; ``on``,
    ``ignoring`` and ``group_*`` on some metric of the query.
    """

    metrics: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    labels: list[tuple[str, frozenset[str], str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def split_names(text: str) -> list[str]:
    """The label names of a grouping clause's list."""
    return [name.strip() for name in text.split(",") if name.strip()]


def balanced(text: str, start: int, step: int) -> str:
    """The parenthesised group that starts at ``text[start]`` ("(" reading forwards with
    step 1, ")" reading backwards with step -1), parentheses included."""
    depth = 0
    index = start
    opening, closing = ("(", ")") if step == 1 else (")", "(")
    while 0 <= index < len(text):
        if text[index] == opening:
            depth += 1
        elif text[index] == closing:
            depth -= 1
            if depth == 0:
                low, high = sorted((start, index))
                return text[low : high + 1]
        index += step
    raise ValueError(f"unbalanced parentheses in {text!r}")


def names_in(text: str) -> tuple[set[str], set[str]]:
    """The metric names and the function names of a query stripped of strings, ranges,
    offsets and label matchers."""
    text = GROUPING.sub(" ", text)
    metrics: set[str] = set()
    functions: set[str] = set()
    for found in IDENTIFIER.finditer(text):
        name, call = found.group(1), found.group(2)
        if name.lower() in PROMQL_KEYWORDS:
            continue  # "and (...)", "on () (...)": a keyword, not a call
        (functions if call else metrics).add(name)
    return metrics, functions


def parse_promql(expr: str) -> PromQL:
    """The metric names, functions and label uses of a PromQL expression (Grafana's
    ``$variables`` allowed). Not a parser: enough of one for the queries of deploy/,
    and promtool checks the alerts' syntax for real."""
    result = PromQL()
    text = STRING.sub('""', expr)  # label values, regexes: never names
    text = GRAFANA_VARIABLE.sub("1", text)
    text = RANGE.sub("", text)
    text = OFFSET.sub(" ", text)
    text = AT_MODIFIER.sub(" ", text)

    def selector(found: re.Match[str]) -> str:
        name, matchers = found.group(1), found.group(2)
        if name is None:
            result.problems.append(f"a selector without a metric name: {{{matchers}}}")
            return " "
        for label in MATCHER.findall(matchers):
            result.labels.append((label, frozenset({name}), f"{name}{{{label}=...}}"))
        return f" {name} "

    text = SELECTOR.sub(selector, text)
    result.metrics, result.functions = names_in(text)
    for found in GROUPING.finditer(text):
        keyword, labels = found.group(1), split_names(found.group(2))
        if keyword in {"by", "without"}:
            after = text[found.end() :]
            if after.lstrip().startswith("("):  # sum by (x) (expr)
                argument = balanced(text, found.end() + len(after) - len(after.lstrip()), 1)
            else:  # sum (expr) by (x)
                before = text[: found.start()].rstrip()
                if not before.endswith(")"):
                    result.problems.append(f"cannot find what {keyword} ({found.group(2)}) groups")
                    continue
                argument = balanced(text, len(before) - 1, -1)
            scope = frozenset(names_in(argument)[0])
        else:
            scope = frozenset(result.metrics)
        for label in labels:
            result.labels.append((label, scope, f"{keyword} ({found.group(2).strip()})"))
    return result


@pytest.mark.parametrize(
    ("expr", "metrics", "functions"),
    [
        (
            "histogram_quantile(0.99,"
            ' sum by (le) (rate(a_bucket{job="tagger"}[$__rate_interval])))',
            {"a_bucket"},
            {"histogram_quantile", "sum", "rate"},
        ),
        (
            'sum(rate(a_total{outcome="dead"}[10m])) / ignoring(reason) group_left'
            " sum(rate(b_total[10m])) > 1e3",
            {"a_total", "b_total"},
            {"sum", "rate"},
        ),
        ('absent(up{job="tagger"} == 1)', {"up"}, {"absent"}),
        (
            "deriv(sum(max by (topic, partition) (lag))[15m:1m]) > 0 and on () (sum(up) > 0)",
            {"lag", "up"},
            {"deriv", "sum", "max"},
        ),
        (
            'count(x{result="rejected"} unless x{result="rejected"} offset 15m) > 0',
            {"x"},
            {"count"},
        ),
        ('sort_desc(max(a{tag=~"by|on|rate"}) by (tag))', {"a"}, {"sort_desc", "max"}),
        ("(sum(increase(a[15m])) or vector(0)) == 0", {"a"}, {"sum", "increase", "vector"}),
        ("rat(a[5m])", {"a"}, {"rat"}),
    ],
)
def test_promql_names_are_extracted(expr: str, metrics: set[str], functions: set[str]) -> None:
    """The extraction the checks below rely on: metric names only, never a label name,
    label value, keyword, duration or number; calls as functions (typos included)."""
    parsed = parse_promql(expr)
    assert parsed.metrics == metrics
    assert parsed.functions == functions
    assert not parsed.problems


def test_promql_label_uses_are_extracted() -> None:
    """Matchers bind to their metric, by () to the metrics it aggregates, on () to any."""
    parsed = parse_promql(
        'sum by (reason) (rate(dead{job="t"}[5m])) / on (job) group_left sum(rate(all[5m]))'
    )
    assert sorted((label, sorted(scope)) for label, scope, _ in parsed.labels) == [
        ("job", ["all", "dead"]),
        ("job", ["dead"]),
        ("reason", ["dead"]),
    ]
    backwards = parse_promql("max(sum(rate(a[5m])) by (x, y)) by (x)")
    assert [(label, sorted(scope)) for label, scope, _ in backwards.labels] == [
        ("x", ["a"]),
        ("y", ["a"]),
        ("x", ["a"]),
    ]


# The worker's metrics and the queries over them -----------------------------------------


def worker_series() -> dict[str, frozenset[str]]:
    """Every series name a worker's /metrics exposes, with its label names (beyond the
    target's): the default registry's collectors (process, platform, gc) and the
    metrics of ``streams.metrics``, whose labels are known even before a child exists."""
    labels: dict[str, set[str]] = {}
    for family in REGISTRY.collect():
        for suffix in SAMPLE_SUFFIXES[family.type]:
            labels.setdefault(family.name + suffix, set())
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
        if family.type in {"histogram", "gaugehistogram"}:
            labels[family.name + "_bucket"].add("le")
        elif family.type == "summary":
            labels[family.name].add("quantile")
    # A metric of the module, or of one of its dicts (the output kinds' counters).
    found = [value for name, value in vars(streams.metrics).items() if not name.startswith("_")]
    values = [*found, *(v for d in found if isinstance(d, dict) for v in d.values())]
    declared = [value for value in values if isinstance(value, MetricWrapperBase)]
    assert declared, "streams.metrics defines no metric"
    for metric in declared:
        for family in metric.describe():
            for suffix in SAMPLE_SUFFIXES[family.type]:
                # _labelnames: prometheus-client offers no public way to read them.
                labels[family.name + suffix].update(metric._labelnames)
    result = {name: frozenset(names) for name, names in labels.items()}
    result.update(PROMETHEUS_SERIES)
    return result


@dataclass(frozen=True)
class Query:
    """A PromQL expression of deploy/ and where it is, for messages."""

    where: str
    expr: str


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside a collapsed row."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def load_dashboard(name: str) -> dict[str, Any]:
    """A dashboard's JSON, failing the test with the file's name when it does not parse."""
    path = DASHBOARDS_DIR / name
    try:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        pytest.fail(f"{path.relative_to(ROOT)}: {error}")
    assert isinstance(dashboard, dict), f"{name}: not a JSON object"
    return dashboard


def queries() -> list[Query]:
    """Every PromQL expression of the alert rules and of the dashboards' panels."""
    found = [Query(f"alerts.yml {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    for name in DASHBOARDS:
        for panel in walk_panels(load_dashboard(name)["panels"]):
            for target in panel.get("targets", []):
                where = (
                    f"{name} panel {panel.get('id')} {panel.get('title')!r} ({target.get('refId')})"
                )
                found.append(Query(where, target.get("expr", "")))
    return found


def test_queries_use_only_the_workers_metrics() -> None:
    """A query over a metric the worker does not export is silently empty: a graph that
    stays blank, an alert that never fires."""
    series = worker_series()
    problems = []
    for query in queries():
        parsed = parse_promql(query.expr)
        problems += [f"{query.where}: {problem}" for problem in parsed.problems]
        unknown = sorted(parsed.metrics - series.keys())
        if unknown:
            problems.append(f"{query.where}: unknown metrics {unknown}")
        calls = sorted(parsed.functions - PROMQL_FUNCTIONS)
        if calls:
            problems.append(f"{query.where}: unknown PromQL functions {calls}")
        if not parsed.metrics:
            problems.append(f"{query.where}: no metric at all in {query.expr!r}")
    assert not problems, (
        "queries use names the worker does not export (see streams/metrics.py):\n"
        + "\n".join(problems)
    )


def test_queries_use_only_the_labels_their_metrics_have() -> None:
    """A matcher or grouping on a label the metric lacks matches nothing or folds every
    series into one, without any error from Prometheus."""
    series = worker_series()
    problems = []
    for query in queries():
        for label, scope, use in parse_promql(query.expr).labels:
            known = [name for name in scope if name in series]  # unknown ones fail above
            if label == "__name__" or label in TARGET_LABELS or not known:
                continue
            if use.startswith(("by ", "without ")):
                lacking = sorted(name for name in known if label not in series[name])
                if lacking:
                    problems.append(f"{query.where}: {use}: {label!r} is not a label of {lacking}")
            elif not any(label in series[name] for name in known):
                problems.append(f"{query.where}: {use}: no metric of the query has {label!r}")
    assert not problems, "queries use labels their metrics do not have:\n" + "\n".join(problems)


def test_population_gauges_are_never_summed() -> None:
    """Every worker reports the same deployment-wide stage and audience sizes: a sum
    would multiply them by the number of workers."""
    problems = [
        query.where
        for query in queries()
        for metric in ("tagger_stage_users", "tagger_audience_users")
        if metric in query.expr
        and not re.search(rf"max\s*(by\s*\([^)]*\)\s*)?\(\s*{metric}\b", query.expr)
    ]
    assert not problems, (
        "aggregate tagger_stage_users / tagger_audience_users with max:\n" + "\n".join(problems)
    )


# Grafana --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_is_well_formed(name: str) -> None:
    """What Grafana needs to load the file as provisioned and draw every panel: a stable
    uid, unique panel ids, a place on the 24-column grid that no other panel takes, and
    the provisioned data source on every panel and query."""
    dashboard = load_dashboard(name)
    assert dashboard["title"] == DASHBOARDS[name]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard.get("uid", "")), "uid"
    assert dashboard.get("schemaVersion", 0) >= 36, "a schemaVersion of Grafana 10 or later"
    assert "id" not in dashboard or dashboard["id"] is None, "no database id in a provisioned file"
    panels = list(walk_panels(dashboard["panels"]))
    assert all(isinstance(panel.get("id"), int) for panel in panels), "every panel needs an id"
    ids: list[int] = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    taken: dict[tuple[int, int], int] = {}
    for panel in panels:
        where = f"panel {panel['id']} {panel.get('title')!r}"
        grid = panel.get("gridPos", {})
        assert {"h", "w", "x", "y"} <= grid.keys(), f"{where}: gridPos"
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, where
        for column in range(grid["x"], grid["x"] + grid["w"]):
            for row in range(grid["y"], grid["y"] + grid["h"]):
                other = taken.setdefault((column, row), panel["id"])
                assert other == panel["id"], f"{where} overlaps panel {other}"
        if panel["type"] == "row":
            continue
        assert panel.get("title"), f"panel {panel['id']}: no title"
        assert panel.get("datasource", {}).get("uid") == DATASOURCE_UID, f"{where}: datasource"
        targets = panel.get("targets", [])
        assert targets, f"{where}: no query"
        ref_ids = [target.get("refId") for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), f"{where}: duplicate refIds {ref_ids}"
        for target in targets:
            assert target.get("expr", "").strip(), f"{where}: empty query"
            assert target.get("datasource", {}).get("uid", DATASOURCE_UID) == DATASOURCE_UID, where
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            assert variable["datasource"]["uid"] == DATASOURCE_UID, variable["name"]


def test_dashboards_have_distinct_uids() -> None:
    """Two provisioned dashboards with one uid: Grafana loads only one of them."""
    uids = [load_dashboard(name)["uid"] for name in DASHBOARDS]
    assert len(uids) == len(set(uids)), uids
    on_disk = {path.name for path in DASHBOARDS_DIR.glob("*.json")}
    assert on_disk == set(DASHBOARDS), f"dashboards not covered by these tests: {on_disk}"


def test_grafana_provisioning_matches_the_dashboards() -> None:
    """The data source gets the uid the dashboards name and points at Prometheus's
    compose service; the provider loads the directory the dashboards are mounted at."""
    datasources = load_yaml(DATASOURCES)["datasources"]
    (prometheus,) = (source for source in datasources if source["type"] == "prometheus")
    assert prometheus["uid"] == DATASOURCE_UID
    assert prometheus["url"] == "http://prometheus:9090"
    assert prometheus["isDefault"] is True
    assert sum(bool(source.get("isDefault")) for source in datasources) == 1
    providers = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    (provider,) = providers
    assert provider["type"] == "file"
    assert provider["options"]["path"] == GRAFANA_DASHBOARDS_PATH


def compose_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A compose service's bind mounts: container path -> host path (resolved)."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
        else:
            source, target = volume.get("source", ""), volume.get("target", "")
        if source.startswith((".", "/")):  # a bind mount, not a named volume
            mounts[target.rstrip("/")] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


def test_compose_mounts_the_monitoring_files() -> None:
    """The paths in these files (rule_files, the dashboards' directory) only work if
    docker-compose mounts deploy/ where they expect it, and scrapes services it runs."""
    services = (load_yaml(COMPOSE_FILE) or {}).get("services", {})
    if "prometheus" not in services and "grafana" not in services:
        pytest.skip("docker-compose.yml runs neither Prometheus nor Grafana yet")
    problems = []
    if "prometheus" in services:
        mounts = compose_mounts(services["prometheus"])
        if mounts.get("/etc/prometheus") != PROMETHEUS_DIR:
            problems.append(f"prometheus: mount deploy/prometheus at /etc/prometheus ({mounts})")
        command = " ".join(services["prometheus"].get("command") or [])
        config = re.search(r"--config\.file=(\S+)", command)
        if config and config.group(1) != "/etc/prometheus/prometheus.yml":
            problems.append(f"prometheus: --config.file={config.group(1)}")
        config_targets = [
            target
            for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
            if job["job_name"] == JOB
            for group in job["static_configs"]
            for target in group["targets"]
        ]
        for target in config_targets:
            if target.split(":")[0] not in services:
                problems.append(f"prometheus.yml scrapes {target}: no such compose service")
    if "grafana" in services:
        mounts = compose_mounts(services["grafana"])
        if mounts.get(GRAFANA_DASHBOARDS_PATH) != DASHBOARDS_DIR:
            problems.append(
                f"grafana: mount deploy/grafana/dashboards at {GRAFANA_DASHBOARDS_PATH}"
            )
        if mounts.get("/etc/grafana/provisioning") != GRAFANA_DIR / "provisioning":
            problems.append(
                "grafana: mount deploy/grafana/provisioning at /etc/grafana/provisioning"
            )
    assert not problems, "docker-compose.yml:\n" + "\n".join(problems)
