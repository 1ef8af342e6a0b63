"""The price table: what a CPU-hour, a GB-hour of memory, a GPU-hour and a GB-month cost.

The defaults are AWS list prices (us-east-1, Linux, on-demand; S3 Standard), as published in
June 2025, after that month's reduction of P4d/P5 prices. They are list prices: no Savings
Plan, reservation, spot or negotiated discount. ``[prices]`` in ``plinth.toml`` (or
``PLINTH_PRICES`` as JSON) overrides any of them by key.

AWS sells instances, not cores, so the CPU and memory prices are derived: solving
``4 c + 8 m = 0.1785`` (c7i.xlarge: 4 vCPU, 8 GiB) and ``4 c + 32 m = 0.2646`` (r7i.xlarge:
4 vCPU, 32 GiB) gives ``c = 0.03745`` per vCPU-hour and ``m = 0.0035875`` per GiB-hour; they
price the general-purpose m7i.xlarge (4 vCPU, 16 GiB, $0.2016) at $0.2072, within 3%. A GPU's
price is its instance's price less the instance's vCPUs and memory at those rates, divided by
its GPUs, so a GPU run pays for its host's CPU and memory once, through its CPU and memory use.

"GB" is 2^30 bytes throughout, as AWS counts instance memory and S3 storage.

Example:
    >>> table = price_table({"cpu_core_hour": 0.05})
    >>> table["cpu_core_hour"].usd, table["cpu_core_hour"].overridden
    (0.05, True)
    >>> round(table.gpu_hour("NVIDIA A10G"), 4)
    0.7988
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plinth.errors import ConfigError

if TYPE_CHECKING:
    from plinth._core.settings import Settings

__all__ = [
    "GIB",
    "PRICES_AS_OF",
    "PRICES_SOURCE",
    "Price",
    "PriceTable",
    "default_prices",
    "gpu_model",
    "price_table",
    "prices_for",
]

#: One "GB" as AWS bills memory and storage: 2^30 bytes.
GIB = 2**30
#: When the default prices were taken from AWS's price pages.
PRICES_AS_OF = "2025-06"
#: Where the default prices come from.
PRICES_SOURCE = (
    "AWS list prices, us-east-1: EC2 Linux on-demand (aws.amazon.com/ec2/pricing/on-demand), "
    "S3 Standard (aws.amazon.com/s3/pricing)"
)
_EC2 = f"EC2 us-east-1 on-demand, {PRICES_AS_OF}"
_S3 = f"S3 Standard us-east-1, first 50 TB a month, {PRICES_AS_OF}"

# The two instances the vCPU and memory prices are solved from: (USD/hour, vCPUs, GiB).
_C7I_XLARGE = (0.1785, 4, 8)
_R7I_XLARGE = (0.2646, 4, 32)
_MEMORY_GB_HOUR = (_R7I_XLARGE[0] - _C7I_XLARGE[0]) / (_R7I_XLARGE[2] - _C7I_XLARGE[2])
_CPU_CORE_HOUR = (_C7I_XLARGE[0] - _C7I_XLARGE[2] * _MEMORY_GB_HOUR) / _C7I_XLARGE[1]

# GPU instances: model -> (instance, USD/hour, GPUs, vCPUs, GiB).
_GPU_INSTANCES: dict[str, tuple[str, float, int, int, int]] = {
    "t4": ("g4dn.xlarge", 0.526, 1, 4, 16),
    "l4": ("g6.xlarge", 0.8048, 1, 4, 16),
    "a10g": ("g5.xlarge", 1.006, 1, 4, 16),
    "a100": ("p4d.24xlarge", 21.96, 8, 96, 1152),
    "h100": ("p5.48xlarge", 55.04, 8, 192, 2048),
}
#: The GPU whose price a GPU of unknown model is charged at.
DEFAULT_GPU = "a10g"
# How device names (nvidia-smi) map to the models above, most specific first.
_GPU_PATTERNS = [
    ("h100", re.compile(r"\bh100\b")),
    ("a100", re.compile(r"\ba100\b")),
    ("a10g", re.compile(r"\ba10g\b")),
    ("l4", re.compile(r"\bl4\b")),
    ("t4", re.compile(r"\bt4\b")),
]


@dataclass(frozen=True)
class Price:
    """One entry of the price table: its key, USD per unit, the unit and where it came from."""

    key: str
    usd: float
    unit: str
    source: str
    overridden: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The price as JSON-ready data.

        Example:
            >>> Price("x", 1.0, "hour", "test").to_dict()["usd"]
            1.0
        """
        return {
            "key": self.key,
            "usd": self.usd,
            "unit": self.unit,
            "source": self.source,
            "overridden": self.overridden,
        }


def _gpu_price(model: str) -> Price:
    instance, usd, gpus, vcpus, gib = _GPU_INSTANCES[model]
    host = vcpus * _CPU_CORE_HOUR + gib * _MEMORY_GB_HOUR
    return Price(
        f"gpu_hour_{model}",
        round((usd - host) / gpus, 6),
        "GPU-hour",
        f"{_EC2}: {instance} ${usd:g}/h ({gpus} x {model.upper()}, {vcpus} vCPU, {gib} GiB) "
        "less its vCPUs and memory at the rates above, per GPU",
    )


def default_prices() -> dict[str, Price]:
    """The default price table, by key, each with its source.

    Example:
        >>> round(default_prices()["storage_gb_month"].usd, 3)
        0.023
    """
    table = [
        Price(
            "cpu_core_hour",
            round(_CPU_CORE_HOUR, 6),
            "vCPU-hour",
            f"{_EC2}: solved from c7i.xlarge ${_C7I_XLARGE[0]}/h (4 vCPU, 8 GiB) and r7i.xlarge "
            f"${_R7I_XLARGE[0]}/h (4 vCPU, 32 GiB)",
        ),
        Price(
            "memory_gb_hour",
            round(_MEMORY_GB_HOUR, 7),
            "GiB-hour",
            f"{_EC2}: (r7i.xlarge - c7i.xlarge) / 24 GiB",
        ),
        *(_gpu_price(model) for model in _GPU_INSTANCES),
    ]
    fallback = _gpu_price(DEFAULT_GPU)
    table.append(
        Price(
            "gpu_hour",
            fallback.usd,
            "GPU-hour",
            f"a GPU of unknown model is charged as an {DEFAULT_GPU.upper()} "
            f"(gpu_hour_{DEFAULT_GPU}'s default)",
        )
    )
    table.append(Price("storage_gb_month", 0.023, "GiB-month", _S3))
    return {p.key: p for p in table}


def gpu_model(name: str | None) -> str | None:
    """The price-table model of a GPU device name (``nvidia-smi``'s), or ``None`` if unknown.

    Example:
        >>> gpu_model("NVIDIA H100 80GB HBM3"), gpu_model("Tesla T4"), gpu_model("RTX 4090")
        ('h100', 't4', None)
    """
    if not name:
        return None
    text = re.sub(r"[^a-z0-9]+", " ", name.lower())
    for model, pattern in _GPU_PATTERNS:
        if pattern.search(text):
            return model
    return None


class PriceTable(Mapping[str, Price]):
    """The effective prices: the defaults with the overrides applied.

    Example:
        >>> table = price_table()
        >>> table.cpu_core_hour > 0 and table.memory_gb_hour > 0
        True
    """

    def __init__(self, prices: Mapping[str, Price], as_of: str | None = None) -> None:
        self._prices = dict(prices)
        #: When the default prices were last checked (a server may run another version).
        self.as_of = as_of or PRICES_AS_OF

    def __getitem__(self, key: str) -> Price:
        return self._prices[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    @property
    def cpu_core_hour(self) -> float:
        """USD per vCPU-hour."""
        return self._prices["cpu_core_hour"].usd

    @property
    def memory_gb_hour(self) -> float:
        """USD per GiB-hour of memory."""
        return self._prices["memory_gb_hour"].usd

    @property
    def storage_gb_month(self) -> float:
        """USD per GiB-month of storage."""
        return self._prices["storage_gb_month"].usd

    def gpu_hour(self, device: str | None = None) -> float:
        """USD per GPU-hour for a device name or model key (``gpu_hour`` when unknown).

        Example:
            >>> price_table({"gpu_hour_t4": 0.3}).gpu_hour("Tesla T4")
            0.3
        """
        model = device if device in _GPU_INSTANCES else gpu_model(device)
        key = f"gpu_hour_{model}" if model else "gpu_hour"
        return self._prices[key].usd

    def to_dict(self) -> dict[str, Any]:
        """Every price as JSON-ready data, by key.

        Example:
            >>> sorted(price_table().to_dict())[:2]
            ['cpu_core_hour', 'gpu_hour']
        """
        return {key: price.to_dict() for key, price in self._prices.items()}


def price_table(overrides: Mapping[str, float] | None = None) -> PriceTable:
    """The default prices with ``overrides`` (USD by key) applied; unknown keys are refused.

    Example:
        >>> price_table({"storage_gb_month": 0.02}).storage_gb_month
        0.02
    """
    prices = default_prices()
    for key, value in (overrides or {}).items():
        if key not in prices:
            raise ConfigError(
                f"'{key}' is not a price the cost accounting knows.",
                hint=f"Valid price keys are: {', '.join(sorted(prices))}.",
            )
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if number is None or not math.isfinite(number) or number < 0:
            raise ConfigError(
                f"The price '{key}' must be a number of USD of 0 or more, not {value!r}.",
                hint=f"Write it like: {key} = {prices[key].usd:g}",
            )
        base = prices[key]
        prices[key] = Price(key, float(number), base.unit, "override (settings: prices)", True)
    return PriceTable(prices)


def prices_for(settings: Settings) -> PriceTable:
    """The effective price table of a workspace's settings (``prices`` overrides applied).

    Example:
        >>> from plinth._core.settings import Settings
        >>> prices_for(Settings(home="/tmp/ws")).storage_gb_month
        0.023
    """
    return price_table(settings.prices)
