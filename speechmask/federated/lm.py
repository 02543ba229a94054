"""LM mode: a causal language model (HuggingFace transformers) reads a device's masked features
as a prefix and generates the intent label; LoRA adapters (peft) and the speech projector are the
only weights that train and travel.

The speech path is SLAM-ASR's: a frozen speech encoder, then a small trainable projector into the
LM's embeddings. The encoder is the cloud SLU model's (`--slu`: convolutions, BiGRU and attention
pooling, trained on what devices send); its pooled utterance vector, through a bottleneck MLP,
is one prefix position. Projecting the log-mel frames themselves (stacked, as the first version
did) or the encoder's frame sequence taught the LM little in the same steps (CHANGELOG).

The LM is either a local checkpoint directory the user gives (`from_pretrained(...,
local_files_only=True)`: never a hub download) or, for tests and the demo, a small GPT-2
configuration initialised here and pre-trained on the corpus's training transcripts with their
intents ("... intent: lights_on"), so that it is a language model of this domain before any
speech reaches it. Its tokenizer is one of the corpus's words (`word_tokenizer`, saved beside it
in HuggingFace's layout); a user's folder brings its own. Both sit behind `HFTokenizer`. LoRA
goes where peft puts it by default for the model's type (GPT-2's fused attention projection,
Llama's query and value projections, ...)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speechmask.errors import ConfigError
from speechmask.models.slu import SLUModel
from speechmask.train.data import pad_batch

PROMPT = " intent:"
#: the projector's hidden width: 64 carries the intent (84 % after 600 centralised steps on
#: bench_mask's masked features, CHANGELOG) while the LoRA + projector weights stay under 2 %
#: of the small LM's
BOTTLENECK = 64


#: the built-in LM's special tokens, in id order (small_lm's pad, end-of-text and unknown ids)
SPECIALS = ("<pad>", "<eos>", "<unk>")


def word_tokenizer(texts: list[str], intents: list[str] = ()) -> "HFTokenizer":
    """A word-level tokenizer of `texts` (tokenizers' WordLevel on whitespace and punctuation;
    words elsewhere are <unk>), with each of `intents` one token whatever its characters (a
    `set-alarm` too): the label after the prompt is one prediction, not one per character."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=list(SPECIALS)))
    fast = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>",
                                   eos_token="<eos>", unk_token="<unk>")
    fast.add_tokens([AddedToken(name, single_word=True, normalized=False)
                     for name in intents if name not in fast.get_vocab()])
    return HFTokenizer(fast)


def small_lm(tok: "HFTokenizer", width: int = 256, layers: int = 6, heads: int = 4):
    """A GPT-2 initialised here for `tok`'s vocabulary and special ids."""
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=512, n_embd=width,
                                      n_layer=layers, n_head=heads, bos_token_id=tok.EOS,
                                      eos_token_id=tok.EOS, pad_token_id=tok.PAD))


def pretrain(model, tok: "HFTokenizer", texts: list[str], steps: int, seed: int = 0,
             batch: int = 32, lr: float = 2e-3, progress: bool = False) -> float:
    """Next-token prediction on `texts`; returns the last loss."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    loss = torch.tensor(0.0)
    for _ in tqdm(range(steps), desc="pre-training the LM", disable=not progress):
        rows = [tok.encode(texts[i]) + [tok.EOS] for i in rng.integers(0, len(texts), batch)]
        width = max(map(len, rows))
        ids = torch.tensor([r + [tok.PAD] * (width - len(r)) for r in rows])
        inside = torch.arange(width)[None] < torch.tensor([len(r) for r in rows])[:, None]
        loss = model(input_ids=ids, attention_mask=inside.long(),
                     labels=ids.masked_fill(~inside, -100)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.detach())


@torch.no_grad()
def text_accuracy(lm, tok: "HFTokenizer", transcripts: list[str], intents: list[str],
                  max_len: int = 16) -> float:
    """The LM alone, reading each *transcript* and the prompt: the share of intents it generates
    exactly (greedy). The ceiling of the speech path, which must first recover from the masked
    features what the transcript says."""
    lm.eval()
    hits = 0
    for text, intent in zip(transcripts, intents):
        ids = torch.tensor([tok.encode(text + PROMPT)])
        out = lm.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                          **_greedy(tok, max_len))
        hits += tok.decode(out[0, ids.shape[1]:].tolist()).strip() == intent
    return hits / len(intents) if intents else 0.0


def _greedy(tok: "HFTokenizer", max_len: int) -> dict:
    """transformers' `generate` settings: greedy, up to `max_len` new tokens, ending at EOS."""
    return dict(max_new_tokens=max_len, do_sample=False, eos_token_id=tok.EOS,
                pad_token_id=tok.PAD)


class HFTokenizer:
    """A HuggingFace tokenizer (the LM folder's own, or `word_tokenizer`'s): `encode` without
    special tokens, `decode` without them, `EOS` its end-of-text id, `PAD` its padding id or,
    without one, `EOS` (padding never reaches the loss)."""

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

    def save(self, folder: Path) -> None:
        self.tok.save_pretrained(folder)


def load_lm(folder: Path):
    """A causal LM and its tokenizer from a local folder in HuggingFace's layout (the built-in
    LM's included); never a download. The tokenizer is read first: it is the cheaper of the two
    to refuse."""
    from transformers import AutoModelForCausalLM, GenerationConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per load, each round on every device: noise
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such LM directory", field="lm_dir")
    tok = _tokenizer(folder)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{folder}: not a causal language model "
                          f"({_first_line(exc)})", field="lm_dir") from None
    # greedy means greedy: a checkpoint's own generation settings (repetition penalties,
    # banned words, a minimum length) would otherwise still steer `generate`
    model.generation_config = GenerationConfig(eos_token_id=tok.EOS, pad_token_id=tok.PAD)
    if len(tok) > model.get_input_embeddings().num_embeddings:
        raise ConfigError(f"{folder}: the tokenizer has {len(tok)} tokens, the model's "
                          f"embedding {model.get_input_embeddings().num_embeddings}",
                          field="lm_dir")
    return model, tok


def _tokenizer(folder: Path) -> HFTokenizer:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{folder}: no tokenizer (a HuggingFace tokenizer's files: "
                          f"{_first_line(exc)})", field="lm_dir") from None
    if tok.eos_token_id is None:
        raise ConfigError(f"{folder}: the tokenizer has no end-of-text token (eos_token), which "
                          "ends the generated intent", field="lm_dir")
    return HFTokenizer(tok)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


class SpeechLM(nn.Module):
    """The LM with LoRA adapters, reading an utterance through the cloud model's frozen encoder:
    its attention-pooled vector, through the projector (a bottleneck MLP), is the prefix."""

    def __init__(self, lm, encoder: SLUModel, rank: int = 4, bottleneck: int = BOTTLENECK):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        from transformers.pytorch_utils import Conv1D

        # target_modules None: peft's own choice for the model's type; GPT-2's Conv1D layers
        # store their weights transposed (fan_in_fan_out)
        conv1d = any(isinstance(m, Conv1D) for m in lm.modules())
        try:
            with warnings.catch_warnings():  # peft reads an attribute transformers 5 deprecates
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing",
                                        category=FutureWarning)
                self.lm = get_peft_model(lm, LoraConfig(r=rank, lora_alpha=2 * rank,
                                                        fan_in_fan_out=conv1d, lora_dropout=0.0))
        except ValueError as exc:
            raise ConfigError(f"LoRA cannot adapt a {lm.config.model_type!r} model: "
                              f"{_first_line(exc)}", field="lm_dir") from None
        self.encoder = encoder.eval()
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        width = lm.get_input_embeddings().embedding_dim
        self.projector = nn.Sequential(nn.Linear(2 * encoder.cfg.hidden, bottleneck), nn.GELU(),
                                       nn.Linear(bottleneck, width))

    def train(self, mode: bool = True) -> "SpeechLM":
        super().train(mode)
        self.encoder.eval()  # frozen: its batch norms and dropout stay as trained
        return self

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
        """`(B, 1, width)` prefix embeddings and their `(B, 1)` attention mask."""
        x, lengths = pad_batch(feats, self.encoder.floor)
        with torch.no_grad():
            pooled, _, _ = self.encoder.summarise(x, lengths)
        return self.projector(pooled).unsqueeze(1), torch.ones(len(feats), 1, dtype=torch.bool)

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
        """Greedy decoding (transformers' `generate`) after the prefix and the prompt, one
        utterance at a time (no padding); given embeddings only, `generate` returns only the new
        tokens."""
        self.eval()
        out = []
        for f in feats:
            prefix, _ = self.prefix([f])
            embeds = torch.cat([prefix, self._embed(torch.tensor([tok.encode(PROMPT)]))], 1)
            ids = self.lm.generate(inputs_embeds=embeds,
                                   attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
                                   **_greedy(tok, max_len))
            out.append(tok.decode(ids[0].tolist()).strip())
        return out


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


def speech_lm(lm_dir: Path, encoder_path: Path) -> tuple[SpeechLM, HFTokenizer]:
    """The speech LM of `lm_dir` reading through the encoder of the cloud model at
    `encoder_path` (an SLU checkpoint); the projector starts the same on every device."""
    from speechmask.train.checkpoint import load_checkpoint

    from .task import make_model

    lm, tok = load_lm(lm_dir)
    for p in lm.parameters():
        p.requires_grad_(False)
    blob = load_checkpoint(encoder_path, kind="slu")
    encoder = make_model(blob["config"], blob["model"])
    torch.manual_seed(0)
    return SpeechLM(lm, encoder), tok


def bytes_of(tensors: dict[str, torch.Tensor]) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors.values()))


class LMClient:
    """The speech LM as a federated task: only the LoRA weights and the projector travel."""

    def __init__(self, settings: dict, arrays: dict | None = None):
        self.settings = settings
        self.model, self.tok = speech_lm(Path(settings["lm_dir"]),
                                         Path(settings["speech_encoder"]))
        if arrays is not None:
            self.model.load_travelling(arrays)

    def arrays(self) -> dict[str, torch.Tensor]:
        return self.model.travelling()

    def _labels(self, data) -> list[str]:
        return [self.settings["intents"][int(i)] for i in data.labels]

    def train(self, data, *, seed: int, proximal_mu: float = 0.0,
              perturbations: int | None = None, guide: list | None = None
              ) -> dict[str, float]:
        s = self.settings
        labels = self._labels(data)
        if s.get("mode") == "forward":  # FwdLLM: LoRA and projector, no backward pass
            from .task import forward_gradient_steps

            self.model.eval()
            params = [p for _, p in self._trainable()]

            def loss_at(rows) -> float:
                return float(self.model.loss([data.features[i] for i in rows],
                                             [labels[i] for i in rows], self.tok))

            return forward_gradient_steps(
                params, loss_at, len(labels), steps=s["local_steps"],
                batch_size=s["batch_size"], lr=s["forward_lr"], seed=seed,
                perturbations=perturbations or s["perturbations"],
                guide=guide)
        return train_lm_local(self.model, self.tok, data.features, labels,
                              steps=s["local_steps"], batch_size=s["batch_size"], lr=s["lr"],
                              seed=seed)

    def _trainable(self) -> list[tuple[str, torch.Tensor]]:
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def head(self) -> dict[str, torch.Tensor]:
        """What forward-gradient clients train (all that trains here), by name, in the order
        `train` perturbs it."""
        return {n: p.detach().clone() for n, p in self._trainable()}

    def accuracy(self, data) -> float:
        return lm_accuracy(self.model, self.tok, data.features, self._labels(data))
