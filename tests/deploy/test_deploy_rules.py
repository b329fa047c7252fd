"""The rules ConfigMap of deploy/k8s: generated from rules/, mounted as the workers' rule
directory, and a change of it reloads the rules the way docs/operations.md says.

The kubelet writes a ConfigMap volume as a directory of links into a hidden timestamped
folder (``..data`` -> ``..2026_...``), and on a change writes a new folder and swaps the
``..data`` link, atomically; the tests build that layout from the committed manifests and
load it as a worker does (``load_rules``, ``rules_version``). With kubectl (its built-in
kustomize) on the machine, the kustomization is also rendered.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from taggers.ruleset import load_rules, rules_version
from taggers.ruleset.loading import rule_files
from taggers.ruleset.model import LIST_SUFFIX
from tests.support import ROOT
from tests.support.core import edited_rules

K8S = ROOT / "deploy" / "k8s"
RULES = ROOT / "rules"
GENERATOR = ROOT / "scripts" / "rules_configmap.py"
RULES_CONFIGMAP = "tagger-rules"
# The worker's working directory in the image; its rules/ replaces the bundled pack.
RULES_MOUNT = "/app/rules"

Doc = dict[str, Any]


def generate(*arguments: str) -> subprocess.CompletedProcess[str]:
    """scripts/rules_configmap.py run with these arguments."""
    return subprocess.run(
        [sys.executable, str(GENERATOR), *arguments],
        capture_output=True,
        text=True,
        check=False,
    )


def version_files(directory: Path) -> set[str]:
    """The files a rule set's version covers (its rule files and word lists), relative."""
    paths = [*rule_files(directory), *directory.rglob("*" + LIST_SUFFIX)]
    return {path.relative_to(directory).as_posix() for path in paths}


@pytest.fixture(scope="module")
def configmap() -> Doc:
    """The committed rules ConfigMap."""
    document: Doc = yaml.safe_load((K8S / "rules-configmap.yaml").read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def pod() -> Doc:
    """The pod template's spec of the committed Deployment."""
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text(encoding="utf-8"))
    spec: Doc = deployment["spec"]["template"]["spec"]
    return spec


def rules_volume(pod: Doc) -> Doc:
    """The volume the worker container mounts at its rule directory."""
    (worker,) = pod["containers"]
    (mount,) = [m for m in worker["volumeMounts"] if m["mountPath"] == RULES_MOUNT]
    # A subPath mount is never updated by the kubelet: the rules would never reload.
    assert "subPath" not in mount and "subPathExpr" not in mount
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    found: Doc = volume
    return found


def test_the_committed_configmap_and_items_are_what_the_generator_makes() -> None:
    """An edit of rules/ without running the generator fails here."""
    result = generate("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_fails_for_rules_the_configmap_does_not_hold(tmp_path: Path) -> None:
    """The check above can fail: against an edited pack, and a pack with another list
    file, it names both files as out of date."""
    rules = edited_rules(tmp_path / "rules", {"params.yaml": ("params:", "params:  # edited")})
    result = generate("--check", "--rules", str(rules))
    assert result.returncode == 1
    assert "deploy/k8s/rules-configmap.yaml is not up to date" in result.stdout
    assert "deploy/k8s/deployment.yaml" not in result.stdout  # same files, same items
    (rules / "lists" / "more_words.txt").write_text("促销\n", encoding="utf-8")
    result = generate("--check", "--rules", str(rules))
    assert result.returncode == 1
    assert "deploy/k8s/deployment.yaml is not up to date" in result.stdout


def test_the_configmap_holds_every_rule_file_as_it_is(configmap: Doc, pod: Doc) -> None:
    """Every file of the pack's version is a key, with the file's exact text, and the
    volume's items put each key back at its path: nothing is left out of the directory."""
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["name"] == RULES_CONFIGMAP
    volume = rules_volume(pod)
    assert volume["configMap"]["name"] == RULES_CONFIGMAP
    paths = {item["key"]: item["path"] for item in volume["configMap"]["items"]}
    assert set(paths) == set(configmap["data"])
    assert set(paths.values()) == version_files(RULES)
    assert {"alerts.yaml", "lists/sensitive_words.txt"} <= set(paths.values())
    for key, path in paths.items():
        assert configmap["data"][key] == (RULES / path).read_text(encoding="utf-8"), path


def kubelet_write(volume: Path, data: dict[str, str], items: list[Doc], stamp: str) -> None:
    """Write a ConfigMap volume the way the kubelet's atomic writer does: the files in a
    new hidden folder, ``..data`` swapped to it with a rename, a link per top-level name,
    then the old folder removed."""
    volume.mkdir(exist_ok=True)
    folder = volume / f"..{stamp}"
    for item in items:
        target = folder / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data[item["key"]], encoding="utf-8")
    old = (volume / "..data").resolve() if (volume / "..data").exists() else None
    (volume / "..data_tmp").symlink_to(folder.name)
    os.replace(volume / "..data_tmp", volume / "..data")
    for name in {Path(item["path"]).parts[0] for item in items}:
        if not (volume / name).is_symlink():
            (volume / name).symlink_to(Path("..data") / name)
    if old is not None:
        shutil.rmtree(old)


def test_a_changed_configmap_reloads_as_a_worker_polls_it(
    configmap: Doc, pod: Doc, tmp_path: Path
) -> None:
    """The mounted ConfigMap loads as the pack does (same version), and after the kubelet
    swaps in an edited one, the worker's poll sees a new version and loads the edit."""
    items = rules_volume(pod)["configMap"]["items"]
    volume = tmp_path / "rules"
    kubelet_write(volume, configmap["data"], items, "2026_12_02_01_00_00.000000001")
    live = load_rules(volume)
    assert live.version == load_rules(RULES).version == rules_version(volume)
    assert live.lists["sensitive_words"]

    edited = dict(configmap["data"])
    key = "params.yaml"
    edited[key] = edited[key].replace("params:", "params:\n  added_by_test: 7", 1)
    assert edited[key] != configmap["data"][key]
    kubelet_write(volume, edited, items, "2026_12_02_01_01_00.000000002")
    assert rules_version(volume) != live.version
    reloaded = load_rules(volume)
    assert reloaded.version == rules_version(volume)
    assert reloaded.params["added_by_test"] == 7
    assert [path.name for path in volume.iterdir() if path.name.startswith("..2026")] == [
        "..2026_12_02_01_01_00.000000002"
    ]


def test_kustomize_renders_the_rules_configmap_and_its_mount() -> None:
    """`kubectl kustomize deploy/k8s` (what `kubectl apply -k` applies) holds the rules
    ConfigMap, with every rule file, and the Deployment mounting it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the checks above cover the committed files")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = {
        (document["kind"], document["metadata"]["name"]): document
        for document in yaml.safe_load_all(result.stdout)
        if document
    }
    configmap = rendered[("ConfigMap", RULES_CONFIGMAP)]
    pod = rendered[("Deployment", "tagger")]["spec"]["template"]["spec"]
    volume = rules_volume(pod)["configMap"]
    assert volume["name"] == RULES_CONFIGMAP
    assert {item["key"] for item in volume["items"]} == set(configmap["data"])
    assert {item["path"] for item in volume["items"]} == version_files(RULES)
    assert ("NetworkPolicy", "tagger") in rendered
