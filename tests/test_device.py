"""The device contract: export ids identify weights and configs, the stamp is checked by name, the
device loop streams exactly what the offline mask computes, and the cost has one definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechmask.device import (CONTRACT_VERSION, ContractError, DeviceLoop, check_stamp,
                               export_id, float_decide, histories, history_values, mask_cost,
                               stamp, zero_histories)
from speechmask.masking import gate_logits
from speechmask.models.mask import MaskConfig, MaskGenerator


def _mask(seed: int = 0, **kwargs) -> MaskGenerator:
    torch.manual_seed(seed)
    mask = MaskGenerator(MaskConfig(**kwargs)).eval()
    for p in mask.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return mask


def test_export_id_names_the_weights_and_configs():
    mask = _mask()
    first = stamp(mask)
    assert first["contract_version"] == CONTRACT_VERSION
    assert len(first["export_id"]) == 16 and int(first["export_id"], 16) >= 0
    twin = MaskGenerator(mask.cfg)
    twin.load_state_dict(mask.state_dict())
    assert stamp(twin) == first  # the same weights and configs: the same id
    with torch.no_grad():
        twin.net.head.bias[0] = torch.nextafter(twin.net.head.bias[0], torch.tensor(10.0))
    assert export_id(twin.cfg, twin.state_dict()) != first["export_id"]  # one ulp of one weight
    with torch.no_grad():
        mask.norm.mean[3] += 1.0  # buffers count: the device normalises with them
    assert stamp(mask)["export_id"] != first["export_id"]
    other = MaskConfig(gate=MaskConfig().gate.__class__(threshold=0.6))
    assert export_id(other, MaskGenerator(other).state_dict()) != \
        export_id(MaskConfig(), MaskGenerator(MaskConfig()).state_dict())


def test_a_mismatched_stamp_is_refused_by_name():
    want = stamp(_mask())
    check_stamp(dict(want), want, "m.tflite")
    for found, why in ((None, "no device contract stamp"),
                       ({**want, "contract_version": CONTRACT_VERSION + 1}, "contract version"),
                       ({**want, "export_id": "f" * 16}, "another mask")):
        with pytest.raises(ContractError, match=why) as exc:
            check_stamp(found, want, "m.tflite")
        assert str(exc.value).startswith("m.tflite: ")


@pytest.mark.parametrize("kwargs", [{}, {"arch": "tiny", "context_segments": 2},
                                    {"band_groups": 4, "feedback": 1}, {"feedback": 0}])
def test_the_device_loop_reproduces_the_offline_mask(kwargs):
    gate = {"band_groups": kwargs.pop("band_groups")} if "band_groups" in kwargs else {}
    mask = _mask(1, **kwargs, **({"gate": MaskConfig().gate.__class__(**gate)} if gate else {}))
    feats = np.random.default_rng(2).normal(-6, 2, (123, 40)).astype(np.float32)
    loop = DeviceLoop(mask.cfg, float_decide(mask), zero_histories(mask.cfg))
    n = mask.cfg.frames_per_segment
    online = np.stack([loop.call(feats[s * n:(s + 1) * n])[1] for s in range(len(feats) // n)])
    np.testing.assert_allclose(online, gate_logits(mask, feats), atol=1e-4)
    # the device holds exactly the histories the contract names, nothing else
    assert [p.shape for p in loop.past] == [(h.frames, h.channels) for h in histories(mask.cfg)]


def test_cost_counts_one_call_and_the_histories():
    mask = _mask()
    cost = mask_cost(mask)
    assert cost["history_bytes"] == history_values(mask.cfg) == (4 + 8 + 16) * 32
    assert cost["memory_bytes"] == (cost["weight_bytes"] + cost["activation_bytes"]
                                   + cost["send_table_bytes"])
    assert cost["activation_bytes"] > cost["history_bytes"]
    assert cost["calls_per_second"] == 25
