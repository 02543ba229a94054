"""LM mode: a causal language model (HuggingFace transformers) reads a device's masked features
through a speech projector as a prefix and generates the intent label; LoRA adapters (peft) and
the projector are the only weights that train and travel.

The projector follows SLAM-ASR: `STACK` consecutive frames concatenated, then a linear map to
the LM's embedding size, one prefix position per stack. The LM is either a local checkpoint
directory the user gives (`from_pretrained(..., local_files_only=True)`: never a hub download)
or, for tests and the demo, a small GPT-2 configuration initialised here and pre-trained on the
corpus's training transcripts with their intents ("... intent: lights_on"), so that it is a
language model of this domain before any speech reaches it. Its tokenizer is then one of
characters (`CharTokenizer`, chars.json beside it); a user's folder brings its own HuggingFace
tokenizer (`HFTokenizer`). LoRA goes where peft puts it by default for the model's type
(GPT-2's fused attention projection, Llama's query and value projections, ...)."""

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


class HFTokenizer:
    """A HuggingFace tokenizer (the LM folder's own) behind `CharTokenizer`'s interface: `encode`
    without special tokens, `decode` without them, `EOS` its end-of-text id, `PAD` its padding
    id or, without one, `EOS` (padding never reaches the loss)."""

    def __init__(self, tok):
        self.tok = tok
        self.EOS = tok.eos_token_id
        self.PAD = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def __len__(self) -> int:
        return len(self.tok)

    def encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)


def load_lm(folder: Path):
    """A causal LM and its tokenizer from a local folder: ours (chars.json beside it) or a
    HuggingFace checkpoint with its tokenizer's files; never a download. The tokenizer is read
    first: it is the cheaper of the two to refuse."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such LM directory", field="lm_dir")
    tok = _tokenizer(folder)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{folder}: not a causal language model "
                          f"({_first_line(exc)})", field="lm_dir") from None
    if len(tok) > model.get_input_embeddings().num_embeddings:
        raise ConfigError(f"{folder}: the tokenizer has {len(tok)} tokens, the model's "
                          f"embedding {model.get_input_embeddings().num_embeddings}",
                          field="lm_dir")
    return model, tok


def _tokenizer(folder: Path):
    if (folder / "chars.json").is_file():
        return CharTokenizer.load(folder)
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{folder}: no tokenizer (chars.json, or a HuggingFace tokenizer's "
                          f"files: {_first_line(exc)})", field="lm_dir") from None
    if tok.eos_token_id is None:
        raise ConfigError(f"{folder}: the tokenizer has no end-of-text token (eos_token), which "
                          "ends the generated intent", field="lm_dir")
    return HFTokenizer(tok)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


class SpeechLM(nn.Module):
    """The LM with LoRA adapters and the speech projector in front of it."""

    def __init__(self, lm, n_mels: int, floor: float, rank: int = 4):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        from transformers.pytorch_utils import Conv1D

        # target_modules None: peft's own choice for the model's type; GPT-2's Conv1D layers
        # store their weights transposed (fan_in_fan_out)
        conv1d = any(isinstance(m, Conv1D) for m in lm.modules())
        try:
            self.lm = get_peft_model(lm, LoraConfig(r=rank, lora_alpha=2 * rank,
                                                    fan_in_fan_out=conv1d, lora_dropout=0.0))
        except ValueError as exc:
            raise ConfigError(f"LoRA cannot adapt a {lm.config.model_type!r} model: "
                              f"{_first_line(exc)}", field="lm_dir") from None
        width = lm.get_input_embeddings().embedding_dim
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

    def loss(self, feats: list[np.ndarray], labels: list[str], tok) -> torch.Tensor:
        prefix, keep = self.prefix(feats)
        texts = [tok.encode(PROMPT) + tok.encode(" " + lab) + [tok.EOS] for lab in labels]
        width = max(map(len, texts))
        ids = torch.tensor([r + [tok.PAD] * (width - len(r)) for r in texts])
        # padding by position, not by id: PAD may be EOS, which the model must learn to emit
        inside = torch.arange(width)[None] < torch.tensor([len(r) for r in texts])[:, None]
        embeds = torch.cat([prefix, self._embed(ids)], dim=1)
        mask = torch.cat([keep, inside], dim=1).long()
        n_prompt = len(tok.encode(PROMPT))
        target = ids.masked_fill(~inside, -100)
        target[:, :n_prompt] = -100
        labels_all = torch.cat([torch.full(keep.shape, -100), target], dim=1)
        return self.lm(inputs_embeds=embeds, attention_mask=mask, labels=labels_all).loss

    @torch.no_grad()
    def generate(self, feats: list[np.ndarray], tok, max_len: int = 32
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
                               **_cache_of(step), use_cache=True)
            out.append(tok.decode(ids).strip())
        return out


def _cache_of(step) -> dict:
    """The key/value cache of a forward's output as the next call takes it: `cache` from
    transformers 5 on (where `past_key_values` is deprecated), `past_key_values` before."""
    if "cache" in step:
        return {"cache": step["cache"]}
    return {"past_key_values": step.past_key_values}


def train_lm_local(model: SpeechLM, tok, feats: list[np.ndarray],
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


def lm_accuracy(model: SpeechLM, tok, feats: list[np.ndarray],
                labels: list[str]) -> float:
    model.eval()
    got = model.generate(feats, tok)
    return float(np.mean([g == lab for g, lab in zip(got, labels)])) if labels else 0.0


def speech_lm(lm_dir: Path, n_mels: int, frontend
              ) -> tuple[SpeechLM, CharTokenizer | HFTokenizer]:
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
