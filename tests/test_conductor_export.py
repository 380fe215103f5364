"""``save_conductor`` → ``load_conductor`` keeps the action names, the table and a learned temperature."""

import json
from types import SimpleNamespace

import torch

from maestro_lit.conductor.base import EMPHASIS_SETTINGS, Conductor
from maestro_lit.export import load_conductor, save_conductor


def fake_module(scalarizer, names, hidden_size=6):
    scalarizer.bind(names, hidden_size)
    return SimpleNamespace(
        scalarizer=scalarizer,
        component_names=names,
        policy=SimpleNamespace(hidden_size=hidden_size),
        model_settings=SimpleNamespace(name_or_path="tiny"),
    )


def test_round_trip_keeps_the_action_names(tmp_path):
    torch.manual_seed(0)
    module = fake_module(Conductor(**EMPHASIS_SETTINGS), ["length", "diversity"])
    with torch.no_grad():
        module.scalarizer.head.weight.normal_()
    save_conductor(module, tmp_path / "conductor")
    loaded = load_conductor(tmp_path)
    assert loaded.action_names == ["uniform", "emph_length", "emph_diversity"]
    assert loaded.action_names == json.loads((tmp_path / "conductor" / "conductor.json").read_text())["action_names"]
    torch.testing.assert_close(loaded.action_table, module.scalarizer.action_table)
    hidden = torch.randn(3, 6)
    torch.testing.assert_close(loaded.logits(hidden), module.scalarizer.logits(hidden))


def test_round_trip_of_the_paper_preset_keeps_the_learned_temperature(tmp_path):
    torch.manual_seed(0)
    module = fake_module(Conductor(), ["ppl", "fmt", "ent"])  # the class defaults: the paper preset
    with torch.no_grad():
        module.scalarizer.head.weight.normal_()
        module.scalarizer.log_temperature.fill_(0.5)
    save_conductor(module, tmp_path / "conductor")
    loaded = load_conductor(tmp_path / "conductor")
    assert loaded.action_names == ["only_ppl", "only_fmt", "only_ent"]
    assert loaded.temperature == module.scalarizer.temperature != 1.0
    hidden = torch.randn(3, 6)
    torch.testing.assert_close(loaded.logits(hidden), module.scalarizer.logits(hidden))
