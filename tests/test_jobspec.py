import pytest

from soclake.errors import SoclakeError
from soclake.spec import load as jobspec
from soclake.spec.identity import fingerprint
from soclake.spec.model import spec_schema


def test_defaults_fill_every_key():
    spec = jobspec.resolve({"job": {"name": "a"}})
    schema = spec_schema()
    for section, rules in schema.items():
        assert set(spec[section]) == set(rules)
    assert spec["job"]["images"] == 100 and spec["sampling"]["objects"] == [5, 19]


@pytest.mark.parametrize("raw,match", [
    ({"job": {"name": "a", "imgs": 3}}, "unknown key 'imgs' in \\[job\\]"),
    ({"job": {"name": "a"}, "render2": {}}, "unknown section \\[render2\\]"),
    ({"job": {}}, "\\[job\\] name is required"),
    ({"job": {"name": "a b"}}, "name of letters"),
    ({"job": {"name": "a", "images": "ten"}}, "must be an integer"),
    ({"job": {"name": "a", "images": 0}}, "out of range"),
    ({"job": {"name": "a"}, "sampling": {"objects": [5, 2]}}, "min <= max"),
    ({"job": {"name": "a"}, "sampling": {"strategy": "best"}}, "must be one of"),
    ({"job": {"name": "a"}, "render": {"blend": ["none", "glow"]}}, "unknown modes \\['glow'\\]"),
    ({"job": {"name": "a"}, "layout": {"kind": "replay"}}, "needs annotations"),
])
def test_bad_specs_name_the_problem(raw, match):
    with pytest.raises(SoclakeError, match=match):
        jobspec.resolve(raw)


def test_fingerprint_changes_with_spec_pool_and_inputs():
    a = jobspec.resolve({"job": {"name": "a"}})
    b = jobspec.resolve({"job": {"name": "a", "seed": 1}})
    assert fingerprint(a, "pool1") == fingerprint(jobspec.resolve({"job": {"name": "a"}}), "pool1")
    assert len({fingerprint(a, "pool1"), fingerprint(b, "pool1"), fingerprint(a, "pool2"),
                fingerprint(a, "pool1", "vocab-digest")}) == 4
