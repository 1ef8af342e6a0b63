"""The price table: documented defaults, derived CPU/memory/GPU prices, overrides, bad keys."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from plinth._core.settings import Settings, load_settings
from plinth.cli.main import main
from plinth.cost.prices import (
    PRICES_AS_OF,
    default_prices,
    gpu_model,
    price_table,
    prices_for,
)
from plinth.errors import ConfigError

KEYS = {
    "cpu_core_hour",
    "memory_gb_hour",
    "gpu_hour",
    "gpu_hour_t4",
    "gpu_hour_l4",
    "gpu_hour_a10g",
    "gpu_hour_a100",
    "gpu_hour_h100",
    "storage_gb_month",
}


def test_every_default_price_has_a_unit_and_a_dated_source():
    prices = default_prices()
    assert set(prices) == KEYS
    for key, price in prices.items():
        assert price.usd > 0 and price.unit and not price.overridden, key
        if key != "gpu_hour":
            assert PRICES_AS_OF in price.source, key


def test_cpu_and_memory_prices_reproduce_the_instances_they_are_solved_from():
    table = price_table()
    c7i = 4 * table.cpu_core_hour + 8 * table.memory_gb_hour
    r7i = 4 * table.cpu_core_hour + 32 * table.memory_gb_hour
    assert c7i == pytest.approx(0.1785) and r7i == pytest.approx(0.2646)
    m7i = 4 * table.cpu_core_hour + 16 * table.memory_gb_hour  # listed at $0.2016
    assert abs(m7i - 0.2016) / 0.2016 < 0.03
    assert table.storage_gb_month == 0.023


def test_a_gpu_price_is_its_instance_less_the_host_per_gpu():
    table = price_table()
    host = 4 * table.cpu_core_hour + 16 * table.memory_gb_hour
    assert table["gpu_hour_t4"].usd == pytest.approx(0.526 - host, abs=1e-6)
    h100_host = 192 * table.cpu_core_hour + 2048 * table.memory_gb_hour
    assert table["gpu_hour_h100"].usd == pytest.approx((55.04 - h100_host) / 8, abs=1e-6)
    assert table["gpu_hour"].usd == table["gpu_hour_a10g"].usd


@pytest.mark.parametrize(
    ("device", "model"),
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA A100-SXM4-40GB", "a100"),
        ("NVIDIA A10G", "a10g"),
        ("NVIDIA L4", "l4"),
        ("Tesla T4", "t4"),
        ("NVIDIA L40S", None),
        ("NVIDIA GeForce RTX 4090", None),
        (None, None),
    ],
)
def test_gpu_device_names_map_to_price_models(device, model):
    assert gpu_model(device) == model


def test_gpu_hour_falls_back_for_an_unknown_model():
    table = price_table({"gpu_hour": 1.5, "gpu_hour_t4": 0.25})
    assert table.gpu_hour("Tesla T4") == 0.25
    assert table.gpu_hour("t4") == 0.25
    assert table.gpu_hour("NVIDIA L40S") == 1.5
    assert table.gpu_hour(None) == 1.5


def test_overrides_replace_a_price_and_say_so():
    table = price_table({"cpu_core_hour": 0.04, "storage_gb_month": 0})
    assert table.cpu_core_hour == 0.04 and table["cpu_core_hour"].overridden
    assert table.storage_gb_month == 0.0
    assert "override" in table["cpu_core_hour"].source
    assert not table["memory_gb_hour"].overridden
    assert table.to_dict()["cpu_core_hour"]["overridden"] is True


def test_an_unknown_price_key_names_itself_and_the_valid_keys():
    with pytest.raises(ConfigError) as caught:
        price_table({"cpu_hour": 0.1})
    message = str(caught.value)
    assert "'cpu_hour'" in message
    for key in KEYS:
        assert key in message


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf, True, "0.1"])
def test_a_price_must_be_a_number_of_zero_or_more(value):
    with pytest.raises(ConfigError, match="cpu_core_hour"):
        price_table({"cpu_core_hour": value})


def test_prices_come_from_the_settings(tmp_path: Path):
    settings = Settings(home=tmp_path / "ws", prices={"memory_gb_hour": 0.01})
    assert prices_for(settings).memory_gb_hour == 0.01


def test_prices_from_the_environment_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PLINTH_PRICES", json.dumps({"gpu_hour_h100": 3.0}))
    resolved = load_settings(home=tmp_path / "ws", cwd=tmp_path)
    assert prices_for(resolved.settings).gpu_hour("NVIDIA H100 80GB HBM3") == 3.0


def test_prices_and_budgets_from_plinth_toml_tables(tmp_path: Path):
    (tmp_path / "plinth.toml").write_text(
        'project = "fraud"\n\n[prices]\ncpu_core_hour = 0.05\n\n[budgets]\nfraud = 250\n'
    )
    resolved = load_settings(home=tmp_path / "ws", cwd=tmp_path)
    assert prices_for(resolved.settings).cpu_core_hour == 0.05
    assert resolved.settings.budgets == {"fraud": 250.0}
    (tmp_path / "plinth.toml").write_text('[prices]\ncpu_core_hour = "cheap"\n')
    with pytest.raises(ConfigError, match="table of numbers"):
        load_settings(home=tmp_path / "ws", cwd=tmp_path)


def test_cli_prints_the_effective_table(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("PLINTH_PRICES", json.dumps({"cpu_core_hour": 0.05}))
    assert main(["cost", "prices", "--home", str(tmp_path / "ws"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["as_of"] == PRICES_AS_OF
    assert data["prices"]["cpu_core_hour"]["usd"] == 0.05
    assert data["prices"]["cpu_core_hour"]["overridden"] is True
    assert main(["cost", "prices", "--home", str(tmp_path / "ws")]) == 0
    out = capsys.readouterr().out
    assert "cpu_core_hour *" in out and "c7i.xlarge" in out and "overridden" in out


def test_cli_refuses_an_unknown_price_key(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("PLINTH_PRICES", json.dumps({"gpu_hour_v100": 2.0}))
    assert main(["cost", "prices", "--home", str(tmp_path / "ws")]) == 1
    err = capsys.readouterr().err
    assert "'gpu_hour_v100' is not a price" in err and "gpu_hour_h100" in err
    assert "Traceback" not in err
