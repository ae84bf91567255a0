"""Config parsing: defaults, relative paths, and refusal of anything unknown or malformed."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.config import load_config
from crawler.errors import ConfigError


def test_defaults_are_safe(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("")
    config = load_config(path)
    assert config.crawl.allow_private_networks is False
    assert config.crawl.chromium_path == "/usr/bin/chromium"
    assert config.store_url == f"file://{tmp_path / 'archive'}"
    assert config.index_url == f"sqlite:///{tmp_path / 'archive' / 'index.sqlite'}"


def test_relative_store_is_resolved_against_the_config_folder(tmp_path):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "c.toml"
    path.write_text('[store]\nurl = "file:../data/arch"\n')
    assert load_config(path).store_url == f"file://{tmp_path / 'data' / 'arch'}"


def test_s3_store_keeps_its_url_and_puts_the_index_beside_the_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[store]\nurl = "s3://bucket/prefix"\n')
    config = load_config(path)
    assert config.store_url == "s3://bucket/prefix"
    assert config.index_url == f"sqlite:///{tmp_path / 'citearchive-index.sqlite'}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[crawl]\nconcurency = 3\n", "unknown key 'crawl.concurency'"),
        ("[stor]\nurl = 'file:/x'\n", "unknown key 'stor'"),
        ("[crawl]\nconcurrency = 'many'\n", "invalid value for 'crawl.concurrency'"),
        ("[crawl]\nconcurrency = 0\n", "invalid value for 'crawl.concurrency'"),
        ("[store\nurl = 1\n", "malformed TOML"),
        ("[store]\nurl = 'ftp://x/y'\n", "must start with file: or s3://"),
        ("base_dir = '/etc'\n", "unknown key 'base_dir'"),
    ],
)
def test_bad_config_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_shipped_config_loads():
    config = load_config(Path(__file__).parent.parent / "config" / "citearchive.toml")
    assert config.citation_lists[0].name == "citations.toml"
