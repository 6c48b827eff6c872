from tests.conftest import EXAMPLE


def test_example_inventory_validates(cli):
    r = cli("-i", EXAMPLE, "inventory", "validate")
    assert r.code == 0, r
    assert "2 schools, 16 devices" in r.out


def test_help_lists_groups(cli):
    r = cli("--help")
    assert r.code == 0
    assert "inventory" in r.out and "log" in r.out
