"""LM mode: a causal language model (HuggingFace transformers) reads a device's masked features
through a speech projector as a prefix and generates the intent label; LoRA adapters (peft) and
the projector are the only weights that train and travel.

The projector follows SLAM-ASR: `STACK` consecutive frames concatenated, then a linear map to
the LM's embedding size, one prefix position per stack. The LM is either a local checkpoint
directory the user gives (`from_pretrained(..., local_files_only=True)`: never a hub download)
or, for tests and the demo, a small GPT-2 configuration initialised here and pre-trained on the
corpus's training transcripts with their intents ("... intent: lights_on"), so that it is a
language model of this domain before any speech reaches it. Its tokenizer is then one of
characters (`CharTokenizer`), saved beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speechmask.errors import ConfigError
from speechmask.models.gates import floor_value
from speechmask.train.data import pad_batch

STACK = 4
PROMPT = " intent:"
LORA_TARGETS = ("c_attn",)  # GPT-2's fused query/key/value projection


class CharTokenizer:
    """Characters of the corpus's text; ids 0 pad, 1 end of text."""

    PAD, EOS = 0, 1

    def __init__(self, chars: str):
        self.chars = chars
        self.index = {c: i + 2 for i, c in enumerate(chars)}

    @classmethod
    def fit(cls, texts: list[str]) -> "CharTokenizer":
        return cls("".join(sorted({c for t in texts for c in t})))

    def __len__(self) -> int:
        return len(self.chars) + 2

    def encode(self, text: str) -> list[int]:
        return [self.index[c] for c in text if c in self.index]

    def decode(self, ids) -> str:
        return "".join(self.chars[i - 2] for i in ids if i >= 2)

    def save(self, folder: Path) -> None:
        (folder / "chars.json").write_text(json.dumps({"chars": self.chars}))

    @classmethod
    def load(cls, folder: Path) -> "CharTokenizer":
        return cls(json.loads((folder / "chars.json").read_text())["chars"])


def small_lm(vocab: int, width: int = 256, layers: int = 6, heads: int = 4):
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=512, n_embd=width,
                                      n_layer=layers, n_head=heads, bos_token_id=1,
                                      eos_token_id=1, pad_token_id=0))


def pretrain(model, tok: CharTokenizer, texts: list[str], steps: int, seed: int = 0,
             batch: int = 32, lr: float = 2e-3) -> float:
    """Next-character prediction on `texts`; returns the last loss."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        rows = [tok.encode(texts[i]) + [tok.EOS] for i in rng.integers(0, len(texts), batch)]
        width = max(map(len, rows))
        ids = torch.tensor([r + [tok.PAD] * (width - len(r)) for r in rows])
        labels = ids.masked_fill(ids == tok.PAD, -100)
        loss = model(input_ids=ids, attention_mask=(ids != tok.PAD).long(), labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss)


def load_lm(folder: Path):
    """A causal LM and its tokenizer from a local folder (ours: chars.json beside it)."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such LM directory", field="lm_dir")
    if not (folder / "chars.json").is_file():
        raise ConfigError(f"{folder}: no chars.json; speechmask reads the LMs it pre-trained "
                          "itself (a folder `speechmask federate --model lm` wrote)",
                          field="lm_dir")
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{folder}: not a causal language model "
                          f"({str(exc).splitlines()[0][:120]})", field="lm_dir") from None
    return model, CharTokenizer.load(folder)


class SpeechLM(nn.Module):
    """The LM with LoRA adapters and the speech projector in front of it."""

    def __init__(self, lm, n_mels: int, floor: float, rank: int = 4):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        self.lm = get_peft_model(lm, LoraConfig(r=rank, lora_alpha=2 * rank,
                                                target_modules=list(LORA_TARGETS),
                                                fan_in_fan_out=True, lora_dropout=0.0))
        width = lm.config.n_embd
        self.projector = nn.Linear(STACK * n_mels, width)
        self.floor = floor

    def travelling(self) -> dict[str, torch.Tensor]:
        """What a client sends: the LoRA weights and the projector (names prefixed)."""
        from peft import get_peft_model_state_dict

        out = {f"lora.{k}": v for k, v in get_peft_model_state_dict(self.lm).items()}
        out.update({f"projector.{k}": v for k, v in self.projector.state_dict().items()})
        return out

    def load_travelling(self, arrays: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.lm, {k[5:]: v for k, v in arrays.items()
                                            if k.startswith("lora.")})
        self.projector.load_state_dict({k[10:]: v for k, v in arrays.items()
                                        if k.startswith("projector.")})

    def prefix(self, feats: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        x, lengths = pad_batch(feats, self.floor)
        b, t, m = x.shape
        t = t // STACK * STACK
        stacked = x[:, :t].reshape(b, t // STACK, STACK * m)
        keep = torch.arange(t // STACK)[None] < (lengths // STACK)[:, None]
        return self.projector(stacked), keep

    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)

    def loss(self, feats: list[np.ndarray], labels: list[str], tok: CharTokenizer) -> torch.Tensor:
        prefix, keep = self.prefix(feats)
        texts = [tok.encode(PROMPT) + tok.encode(" " + lab) + [tok.EOS] for lab in labels]
        width = max(map(len, texts))
        ids = torch.tensor([r + [tok.PAD] * (width - len(r)) for r in texts])
        embeds = torch.cat([prefix, self._embed(ids)], dim=1)
        mask = torch.cat([keep, ids != tok.PAD], dim=1).long()
        n_prompt = len(tok.encode(PROMPT))
        target = ids.clone()
        target[:, :n_prompt] = -100
        target[ids == tok.PAD] = -100
        labels_all = torch.cat([torch.full(keep.shape, -100), target], dim=1)
        return self.lm(inputs_embeds=embeds, attention_mask=mask, labels=labels_all).loss

    @torch.no_grad()
    def generate(self, feats: list[np.ndarray], tok: CharTokenizer, max_len: int = 32
                 ) -> list[str]:
        """Greedy decoding after the prompt, one utterance at a time (no padding), with the
        LM's key/value cache so that each new character costs one position."""
        self.eval()
        out = []
        for f in feats:
            prefix, _ = self.prefix([f])
            embeds = torch.cat([prefix, self._embed(torch.tensor([tok.encode(PROMPT)]))], 1)
            step = self.lm(inputs_embeds=embeds, use_cache=True)
            ids: list[int] = []
            for _ in range(max_len):
                nxt = int(step.logits[0, -1].argmax())
                if nxt == tok.EOS:
                    break
                ids.append(nxt)
                step = self.lm(inputs_embeds=self._embed(torch.tensor([[nxt]])),
                               past_key_values=step.past_key_values, use_cache=True)
            out.append(tok.decode(ids).strip())
        return out


def train_lm_local(model: SpeechLM, tok: CharTokenizer, feats: list[np.ndarray],
                   labels: list[str], *, steps: int, batch_size: int, lr: float, seed: int
                   ) -> dict[str, float]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    rng = np.random.default_rng(seed)
    model.train()
    losses = []
    for _ in range(steps):
        rows = rng.choice(len(labels), size=min(batch_size, len(labels)), replace=False)
        loss = model.loss([feats[i] for i in rows], [labels[i] for i in rows], tok)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return {"train-loss": float(np.mean(losses)), "num-examples": steps * min(batch_size,
                                                                             len(labels))}


def lm_accuracy(model: SpeechLM, tok: CharTokenizer, feats: list[np.ndarray],
                labels: list[str]) -> float:
    model.eval()
    got = model.generate(feats, tok)
    return float(np.mean([g == lab for g, lab in zip(got, labels)])) if labels else 0.0


def speech_lm(lm_dir: Path, n_mels: int, frontend) -> tuple[SpeechLM, CharTokenizer]:
    lm, tok = load_lm(lm_dir)
    for p in lm.parameters():
        p.requires_grad_(False)
    torch.manual_seed(0)  # the projector's start is the same on every device
    return SpeechLM(lm, n_mels, floor_value(frontend)), tok


def bytes_of(tensors: dict[str, torch.Tensor]) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors.values()))


class LMClient:
    """The speech LM as a federated task: only the LoRA weights and the projector travel."""

    def __init__(self, settings: dict, arrays: dict | None = None):
        from speechmask.models.slu import SLUConfig

        self.settings = settings
        frontend = SLUConfig.from_dict(settings["slu_config"]).frontend
        self.model, self.tok = speech_lm(Path(settings["lm_dir"]), frontend.n_mels, frontend)
        if arrays is not None:
            self.model.load_travelling(arrays)

    def arrays(self) -> dict[str, torch.Tensor]:
        return self.model.travelling()

    def _labels(self, data) -> list[str]:
        return [self.settings["intents"][int(i)] for i in data.labels]

    def train(self, data, *, seed: int, proximal_mu: float = 0.0, **_) -> dict[str, float]:
        s = self.settings
        return train_lm_local(self.model, self.tok, data.features, self._labels(data),
                              steps=s["local_steps"], batch_size=s["batch_size"], lr=s["lr"],
                              seed=seed)

    def accuracy(self, data) -> float:
        return lm_accuracy(self.model, self.tok, data.features, self._labels(data))
