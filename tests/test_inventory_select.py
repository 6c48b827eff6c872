"""Selection: filters are ANDed, values of one filter ORed; schools by id, Chinese name or id glob."""

from __future__ import annotations

import pytest

from canteen_ops.inventory.loader import load_inventory
from canteen_ops.inventory.select import Selection
from tests.conftest import EXAMPLE


@pytest.fixture(scope="module")
def inv():
    return load_inventory(EXAMPLE)


def ids(inv, **kw):
    return [d.id for d in Selection(**{k: tuple(v) for k, v in kw.items()}).apply(inv)]


def test_empty_selection_is_everything(inv):
    assert ids(inv) == [d.id for d in inv.devices] and len(ids(inv)) == 16


def test_school_by_id_by_chinese_name_and_glob(inv):
    by_id = ids(inv, schools=["xc-shiyan-xx"])
    assert len(by_id) == 8 and all(i.startswith("xc-") for i in by_id)
    assert ids(inv, schools=["西城区实验小学"]) == by_id
    assert ids(inv, schools=["hd-*"]) == [d.id for d in inv.devices if d.id.startswith("hd-")]
    assert len(ids(inv, schools=["西城区实验小学", "hd-yucai-zx"])) == 16
    assert ids(inv, schools=["西城区"]) == []  # a name must match whole


def test_device_glob(inv):
    assert ids(inv, devices=["xc-cam-0[12]"]) == ["xc-cam-01", "xc-cam-02"]
    assert ids(inv, devices=["*-nvr-*"]) == ["xc-nvr-01", "hd-nvr-01"]
    assert ids(inv, devices=["hd-cam-07", "xc-cam-07"]) == ["xc-cam-07", "hd-cam-07"]
    assert ids(inv, devices=["XC-*"]) == []  # case-sensitive, like the ids


def test_kind_vendor_area_tag(inv):
    assert ids(inv, kinds=["nvr"]) == ["xc-nvr-01", "hd-nvr-01"]
    assert ids(inv, vendors=["onvif"]) == ["xc-cam-06", "hd-cam-07"]
    assert ids(inv, areas=["专间"]) == ["xc-cam-04", "hd-cam-04"]
    assert ids(inv, areas=["专间", "仓库"]) == ["xc-cam-04", "hd-cam-01", "hd-cam-04"]
    assert ids(inv, tags=["cold-room"]) == ["xc-cam-04"]
    assert len(ids(inv, tags=["hikvision-estate"])) == 8  # group tag inherited by every device of the school


def test_combinations_are_anded(inv):
    assert ids(inv, schools=["海淀区育才中学"], kinds=["camera"], areas=["烹饪区"]) == ["hd-cam-03"]
    assert ids(inv, vendors=["hikvision"], kinds=["camera"], tags=["cold-room"]) == ["xc-cam-04"]
    assert ids(inv, schools=["xc-shiyan-xx"], vendors=["dahua"]) == []
    assert ids(inv, devices=["*cam-06"], vendors=["onvif", "dahua"]) == ["xc-cam-06", "hd-cam-06"]


def test_as_args():
    assert Selection(schools=("a",), tags=("t", "u")).as_args() == {"schools": ["a"], "tags": ["t", "u"]}
