"""hccprog.safe_yaml: safe tags only, alias bombs and duplicate keys refused, file and line named."""

from __future__ import annotations

import pytest

from hccprog.safe_yaml import MAX_EXPANDED_NODES, YamlError, load_yaml


def _load(tmp_path, text: str | bytes):
    path = tmp_path / "cohort.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load_yaml(path)


def test_plain_yaml_and_merge_keys_load(tmp_path):
    got = _load(tmp_path, "base: &b {time: os_days}\nendpoints:\n  os:\n    <<: *b\n    event: os_event\n")
    assert got["endpoints"]["os"] == {"time": "os_days", "event": "os_event"}
    assert _load(tmp_path, "") is None
    assert _load(tmp_path, "\ufeffa: 1\n".encode()) == {"a": 1}  # a BOM is not a key


def test_a_duplicate_key_names_both_lines(tmp_path):
    with pytest.raises(YamlError) as err:
        _load(tmp_path, "endpoints:\n  os: {time: t}\nclinical: c.csv\nendpoints:\n  pfs: {time: p}\n")
    assert err.value.code == "yaml-duplicate-key"
    text = str(err.value)
    assert "cohort.yaml" in text and "'endpoints' appears twice (first on line 1)" in text and "4" in text


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10^9 leaves
    with pytest.raises(YamlError) as err:
        _load(tmp_path, "\n".join(lines) + "\n")
    assert err.value.code == "yaml-aliases" and f"{MAX_EXPANDED_NODES:,}" in str(err.value)


def test_unsafe_tags_syntax_and_encoding_errors(tmp_path):
    with pytest.raises(YamlError) as err:
        _load(tmp_path, "a: 1\nx: !!python/object/apply:os.system ['true']\n")
    assert err.value.code == "yaml-tag" and "cohort.yaml" in str(err.value) and "row 2" in str(err.value)
    with pytest.raises(YamlError) as err:
        _load(tmp_path, "a: [1, 2\nb: 3\n")
    assert err.value.code == "yaml-syntax" and "row 2" in str(err.value)  # where the parser got stuck
    with pytest.raises(YamlError) as err:
        _load(tmp_path, b"a: 1\nb: caf\xe9\n")
    assert err.value.code == "yaml-encoding" and "0xe9" in str(err.value) and "row 2" in str(err.value)
    with pytest.raises(YamlError) as err:
        load_yaml(tmp_path / "absent.yaml")
    assert err.value.code == "file-missing"
