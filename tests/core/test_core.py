import math

import pytest
import torch

from netprism.core.registry import Registry
from netprism.core.seed import make_generator, seed_everything
from netprism.core.validation import (
    check_finite,
    check_fraction,
    check_labels,
    check_nonempty,
    check_positive_int,
    check_shape,
)


def test_registry_register_get_and_unknown_name_suggests():
    reg: Registry = Registry("widget")
    reg.register("alpha", demo=True)(lambda: 1)
    reg.register("beta")(lambda: 2)
    assert reg.names() == ["alpha", "beta"] and "alpha" in reg and len(reg) == 2
    assert reg.get("beta")() == 2 and reg.meta("alpha") == {"demo": True}
    with pytest.raises(KeyError, match=r"unknown widget 'alpah'.*did you mean 'alpha'"):
        reg.get("alpah")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha")(lambda: 3)


def test_seed_everything_repeats_draws_and_rejects_bad_seed():
    seed_everything(3)
    a = torch.rand(5)
    seed_everything(3)
    assert torch.equal(a, torch.rand(5))
    assert torch.equal(
        torch.rand(3, generator=make_generator(1)), torch.rand(3, generator=make_generator(1))
    )
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_check_finite_names_first_bad_index():
    x = torch.zeros(3, 2)
    x[1, 1] = math.nan
    with pytest.raises(ValueError, match=r"x must be finite: found 1 .*\(1, 1\)"):
        check_finite(x)
    assert check_finite(torch.ones(2)) is not None


def test_check_labels_range_dtype_and_shape():
    check_labels(torch.tensor([0, 2]), 3)
    with pytest.raises(ValueError, match=r"\[0, 3\).*\[0, 3\]"):
        check_labels(torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="integer"):
        check_labels(torch.tensor([0.0, 1.0]), 3)
    with pytest.raises(ValueError, match="1-D"):
        check_labels(torch.zeros(2, 2, dtype=torch.long), 3)


@pytest.mark.parametrize("value", [-0.1, 1.0, math.nan, "0.5", True])
def test_check_fraction_rejects(value):
    with pytest.raises(ValueError, match="rate must lie in"):
        check_fraction(value, "rate")


def test_small_checks():
    assert check_fraction(0.0, "rate") == 0.0
    check_nonempty(1)
    with pytest.raises(ValueError, match="empty"):
        check_nonempty(0)
    with pytest.raises(ValueError, match="positive int"):
        check_positive_int(0, "n")
    check_shape(torch.zeros(2, 3), (None, 3))
    with pytest.raises(ValueError, match=r"\(\*, 4\)"):
        check_shape(torch.zeros(2, 3), (None, 4))
