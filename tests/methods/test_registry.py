"""The registry: all 22 names, and clear errors for bad names and hyperparameters."""

import pytest
import torch

from ntkmtl.methods import METHODS, Requirements, describe_methods, get_method, method_class

REFERENCE_NAMES = [
    "stl",
    "ls",
    "uw",
    "scaleinvls",
    "rlw",
    "dwa",
    "pcgrad",
    "mgda",
    "graddrop",
    "log_mgda",
    "cagrad",
    "log_cagrad",
    "imtl",
    "log_imtl",
    "nashmtl",
    "famo",
    "fairgrad",
    "pivrg",
    "consmtl",
    "go4align",
    "ntkmtl",
]


def test_all_22_names_registered():
    """The reference's 21 names and NTKMTL-SR; a method added later registers itself next to them."""
    assert set(REFERENCE_NAMES + ["ntkmtl_sr"]) <= set(METHODS)
    for name, cls in METHODS.items():
        assert cls.name == name and cls.paper and cls.__module__.endswith(name)
        assert isinstance(cls.requires, Requirements)


def test_reference_defaults():
    """Every default is the reference's (experiments/utils.py parser defaults and the constructors'),
    except the options that name ntkmtl's alternatives, whose defaults select the reference too."""
    defaults = {name: {h.name: h.default for h in cls.all_hparams()} for name, cls in METHODS.items()}
    assert defaults["cagrad"] == {"c": 0.4, "solver": "slsqp", "max_norm": 1.0}
    assert defaults["log_cagrad"] == {"c": 0.4, "solver": "slsqp", "head_gradients": "objective", "max_norm": 1.0}
    assert defaults["fairgrad"]["alpha"] == 1.0
    assert defaults["famo"] == {"gamma": 0.01, "w_lr": 0.025, "max_norm": 0.0}
    assert defaults["dwa"] == {
        "temperature": 2.0,
        "weight_update": "iterations",
        "iteration_window": 25,
        "loss_reduction": "mean",
        "max_norm": 0.0,
    }
    assert defaults["nashmtl"] == {
        "optim_niter": 20,
        "solver": "ecos",
        "update_weights_every": 1,
        "head_gradients": "objective",
        "max_norm": 0.0,
    }
    for name in ("mgda", "log_mgda"):
        assert defaults[name] == {"solver": "sener_koltun", "head_gradients": "objective", "max_norm": 0.0}
    for name in ("imtl", "log_imtl"):
        assert defaults[name] == {"singular": "regularize", "head_gradients": "objective", "max_norm": 0.0}
    assert defaults["pcgrad"] == {"self_projection": True, "max_norm": 1.0}
    assert defaults["go4align"] == {"robust_step_size": 1e-4, "num_groups": 5, "max_norm": 0.0}
    assert defaults["ntkmtl"] == {"ntk_exp": 0.5, "n": 1, "eps": 1e-8, "chunking": "torch_chunk", "max_norm": 1.0}
    assert defaults["ntkmtl_sr"] == {
        "ntk_exp": 0.5,
        "n_splits": 4,
        "eps": 1e-8,
        "chunking": "torch_chunk",
        "max_norm": 0.0,
    }


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown method 'nash'.*valid methods: .*nashmtl"):
        get_method("nash", 2)


@pytest.mark.parametrize(
    "name, hparams, pattern",
    [
        (
            "cagrad",
            {"cc": 0.5},
            r"unknown hyperparameter 'cc' \(value 0.5\); valid hyperparameters: c, solver, max_norm",
        ),
        ("cagrad", {"c": -1.0}, r"c=-1.0 is out of range; valid: float in \[0, inf\)"),
        ("cagrad", {"c": "big"}, r"c='big' is not a number"),
        ("fairgrad", {"alpha": 0}, r"alpha=0 is out of range; valid: float in \(0, inf\)"),
        ("nashmtl", {"optim_niter": 2.5}, r"optim_niter=2.5 is not an integer"),
        ("famo", {"w_lr": float("nan")}, r"w_lr=nan is not finite"),
        ("ntkmtl", {"max_norm": float("inf")}, r"max_norm=inf is not finite; valid: float in \[0, inf\)"),
        ("ls", {"max_norm": -1}, r"max_norm=-1 is out of range"),
        ("go4align", {"num_groups": True}, r"num_groups=True is not a number"),
        ("stl", {"main_task": 2}, r"main_task=2 is out of range; valid: int in \[0, 1\]"),
        ("nashmtl", {"solver": "scs"}, r"solver='scs' is not valid; valid: one of 'ecos', 'newton'"),
    ],
)
def test_bad_hyperparameters_quote_value_and_valid_range(name, hparams, pattern):
    with pytest.raises(ValueError, match=pattern):
        get_method(name, 2, **hparams)


def test_valid_hyperparameters_are_converted():
    method = get_method("nashmtl", 3, optim_niter=5.0, max_norm=2)
    assert method.optim_niter == 5 and isinstance(method.optim_niter, int)
    assert method.max_norm == 2.0 and isinstance(method.max_norm, float)
    assert method_class("ntkmtl") is METHODS["ntkmtl"]


def test_describe_methods_lists_every_method_and_hparam():
    text = describe_methods()
    for name, cls in METHODS.items():
        assert f"{name}  [{cls(n_tasks=2).requirements.describe()}]" in text
    assert "ntkmtl_sr  [losses, representation, chunks]" in text and "famo  [losses, losses after step]" in text
    assert "mgda  [gradients]" in text and "consmtl  [gradients, representation]" in text
    assert "robust_step_size = 0.0001" in text


def test_wrong_loss_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"losses of shape \(3,\), expected \[2\]"):
        get_method("ls", 2).backward(torch.ones(3, requires_grad=True), [])


def test_methods_that_read_the_representation_say_so_and_require_it():
    readers = {name for name, cls in METHODS.items() if cls.requires.representation}
    assert readers == {"ntkmtl_sr", "consmtl"}
    theta = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="method 'consmtl' needs the shared representation"):
        get_method("consmtl", 2).backward(theta * 1.0, [theta])
