"""The ImageBind-huge audio branch, written for pdmer (no vendored ImageBind code).

Module and parameter names follow the official ``imagebind_huge.pth``
(facebookresearch/ImageBind, CC BY-NC-SA 4.0 weights), so its audio keys load
strictly::

    modality_preprocessors.audio.cls_token                       (1, 1, 768)
    modality_preprocessors.audio.rgbt_stem.proj.weight           (768, 1, 16, 16)
    modality_preprocessors.audio.rgbt_stem.norm_layer.{weight,bias}
    modality_preprocessors.audio.pos_embedding_helper.pos_embed  (1, 229, 768)
    modality_trunks.audio.blocks.{i}.attn.{in_proj_weight,in_proj_bias,bias_k,bias_v}
    modality_trunks.audio.blocks.{i}.attn.out_proj.{weight,bias}
    modality_trunks.audio.blocks.{i}.norm_{1,2}.{weight,bias}
    modality_trunks.audio.blocks.{i}.mlp.fc{1,2}.{weight,bias}
    modality_heads.audio.0.{weight,bias}                          LayerNorm
    modality_heads.audio.2.weight                                 (1024, 768)
    modality_postprocessors.audio.1.log_logit_scale               log(20)

The input pipeline is ImageBind's ``load_and_transform_audio_data``: 16 kHz
audio, per 2 s clip the mean removed, Kaldi fbank (128 bins, 25 ms / 10 ms,
hanning), padded or cut to 204 frames, normalised with mean -4.268 and std
9.138. The file is resampled to 16 kHz with torchaudio's default resampler
(:mod:`pdmer.features.resample`) and only channel 0 is read, as ImageBind's
fbank does (:class:`~pdmer.features.ImageBindEncoder` does this; its
``channels="mean"`` feeds the mono mix instead).

Only inference is supported: stochastic depth (drop path 0.1 in training) is
the identity in evaluation and is left out.
"""

from __future__ import annotations

import math
import os
import sys

import torch
from torch import nn

from pdmer.features.fbank import kaldi_fbank
from pdmer.nn.precision import autocast, check_precision

#: Where the official full checkpoint is published (about 4.5 GB).
CHECKPOINT_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
LICENSE = "CC BY-NC-SA 4.0"
LICENSE_URL = "https://creativecommons.org/licenses/by-nc-sa/4.0/"
#: Key prefixes of the audio branch in the official checkpoint.
AUDIO_PREFIXES = tuple(f"modality_{part}.audio." for part in
                       ("preprocessors", "trunks", "heads", "postprocessors"))

SAMPLE_RATE = 16000
N_MELS = 128
TARGET_LENGTH = 204
FBANK_MEAN = -4.268
FBANK_STD = 9.138


class _PatchEmbed(nn.Module):
    # ImageBind's PatchEmbedGeneric with a single-layer stem: `proj` is the
    # convolution itself (not a Sequential), then a LayerNorm over channels.
    def __init__(self, dim, kernel, stride):
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=kernel, stride=stride, bias=False)
        self.norm_layer = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm_layer(self.proj(x).flatten(2).transpose(1, 2))


class _PosEmbed(nn.Module):
    # SpatioTemporalPosEmbeddingHelper(learnable=True): one learned vector per token.
    def __init__(self, n_tokens, dim):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, dim))


class _AudioPreprocessor(nn.Module):
    def __init__(self, dim, kernel, stride, n_mels, target_length):
        super().__init__()
        self.rgbt_stem = _PatchEmbed(dim, kernel, stride)
        n_patches = ((n_mels - kernel) // stride + 1) * ((target_length - kernel) // stride + 1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding_helper = _PosEmbed(n_patches + 1, dim)

    def forward(self, fbank):
        tokens = self.rgbt_stem(fbank)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return tokens + self.pos_embedding_helper.pos_embed


class _Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    # ImageBind's BlockWithMasking without layer scale: pre-norm attention
    # (with learned key/value bias tokens) and MLP, both residual.
    def __init__(self, dim, n_heads, mlp_ratio):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, n_heads, bias=True, add_bias_kv=True,
                                          batch_first=True)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(mlp_ratio * dim))
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        h = self.norm_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm_2(x))


class _Trunk(nn.Module):
    # SimpleTransformer; the audio trunk has no pre-transformer LayerNorm.
    def __init__(self, dim, depth, n_heads, mlp_ratio):
        super().__init__()
        self.blocks = nn.Sequential(*[_Block(dim, n_heads, mlp_ratio) for _ in range(depth)])

    def forward(self, tokens):
        return self.blocks(tokens)


class _SelectCLS(nn.Module):
    def forward(self, tokens):
        return tokens[:, 0]


class _Normalize(nn.Module):
    def forward(self, x):
        return nn.functional.normalize(x, dim=-1)


class _LogitScale(nn.Module):
    # LearnableLogitScaling(logit_scale_init=20, learnable=False): a buffer.
    def __init__(self, scale):
        super().__init__()
        self.register_buffer("log_logit_scale", torch.tensor(math.log(scale)))
        self.max_logit_scale = 100.0

    def forward(self, x):
        return torch.clamp(self.log_logit_scale.exp(), max=self.max_logit_scale) * x


class ImageBindAudio(nn.Module):
    """ImageBind's audio encoder: fbank patches -> 1024-d embedding of norm 20.

    The defaults are ImageBind-huge's audio branch (about 86 M parameters);
    smaller widths and depths keep the same key layout, for tests.

    Parameters
    ----------
    dim : int, default=768
        Token width.
    depth : int, default=12
        Transformer blocks.
    n_heads : int, default=12
    out_dim : int, default=1024
        Size of the joint embedding space.
    mlp_ratio : float, default=4.0
    kernel, stride : int, default=16, 10
        Patch convolution over the (128, 204) fbank image.
    n_mels, target_length : int, default=128, 204
    logit_scale : float, default=20.0
        Norm of the output embeddings.

    Examples
    --------
    >>> import torch
    >>> from pdmer.features.imagebind import ImageBindAudio
    >>> model = ImageBindAudio(dim=32, depth=1, n_heads=2, out_dim=8).eval()
    >>> with torch.no_grad():
    ...     embeddings = model.embed_waveforms(torch.randn(2, 32000) * 0.1)
    >>> embeddings.shape, embeddings.norm(dim=1).round().tolist()
    (torch.Size([2, 8]), [20.0, 20.0])
    """

    def __init__(self, dim=768, depth=12, n_heads=12, out_dim=1024, mlp_ratio=4.0,
                 kernel=16, stride=10, n_mels=N_MELS, target_length=TARGET_LENGTH,
                 logit_scale=20.0):
        super().__init__()
        self.n_mels = n_mels
        self.target_length = target_length
        self.out_dim = out_dim
        self.modality_preprocessors = nn.ModuleDict(
            {"audio": _AudioPreprocessor(dim, kernel, stride, n_mels, target_length)})
        self.modality_trunks = nn.ModuleDict({"audio": _Trunk(dim, depth, n_heads, mlp_ratio)})
        self.modality_heads = nn.ModuleDict({"audio": nn.Sequential(
            nn.LayerNorm(dim, eps=1e-6), _SelectCLS(), nn.Linear(dim, out_dim, bias=False))})
        self.modality_postprocessors = nn.ModuleDict({"audio": nn.Sequential(
            _Normalize(), _LogitScale(logit_scale))})
        self._init_weights()

    def _init_weights(self):
        # Random weights with sensible scales (real use loads the checkpoint).
        pre = self.modality_preprocessors["audio"]
        nn.init.trunc_normal_(pre.cls_token, std=0.02)
        nn.init.trunc_normal_(pre.pos_embedding_helper.pos_embed, std=0.02)
        for block in self.modality_trunks["audio"].blocks:
            nn.init.normal_(block.attn.bias_k, std=0.02)
            nn.init.normal_(block.attn.bias_v, std=0.02)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        """Embeddings of normalised fbank images of shape (batch, 1, n_mels, target_length)."""
        tokens = self.modality_preprocessors["audio"](fbank)
        tokens = self.modality_trunks["audio"](tokens)
        return self.modality_postprocessors["audio"](self.modality_heads["audio"](tokens))

    def preprocess(self, clips: torch.Tensor) -> torch.Tensor:
        """ImageBind's input for 16 kHz clips of shape (batch, n_samples).

        Returns the normalised fbank images, shape (batch, 1, n_mels, target_length).
        """
        clips = clips.float()
        clips = clips - clips.mean(dim=1, keepdim=True)
        fbank = kaldi_fbank(clips, sample_rate=SAMPLE_RATE, num_mel_bins=self.n_mels,
                            frame_length=25, frame_shift=10, window_type="hanning")
        fbank = fbank.transpose(1, 2)  # (batch, n_mels, n_frames)
        missing = self.target_length - fbank.shape[2]
        if missing > 0:
            fbank = nn.functional.pad(fbank, (0, missing))  # zeros, before normalising
        fbank = fbank[:, :, :self.target_length]
        return ((fbank - FBANK_MEAN) / FBANK_STD).unsqueeze(1)

    def embed_waveforms(self, clips: torch.Tensor, precision: str = "auto") -> torch.Tensor:
        """Embeddings of 16 kHz mono clips of shape (batch, n_samples).

        ``precision`` (``"auto"``, ``"bf16"`` or ``"fp32"``) is pdmer's
        precision policy, :func:`pdmer.nn.precision.resolve_precision`:
        ``"auto"`` is bf16 autocast on CUDA and float32 on the CPU, and
        ``"bf16"`` runs float32 (silently here) on a device without native
        bfloat16. The fbank is always computed in float32. Run it under
        :func:`torch.no_grad` (see :func:`load_imagebind_audio` on why the
        weights keep ``requires_grad``).
        """
        check_precision(precision)
        images = self.preprocess(clips)
        with autocast(images.device, precision):
            out = self(images)
        return out.float()


def imagebind_weights_path():
    """Where ``pdmer download imagebind`` puts the audio branch's weights."""
    from pdmer.features.cache import default_cache_dir

    return default_cache_dir() / "weights" / "imagebind_huge_audio.safetensors"


def audio_state_dict(state: dict) -> dict:
    """The audio-branch entries of an ImageBind state dict (any other modality dropped)."""
    return {k: v for k, v in state.items() if k.startswith(AUDIO_PREFIXES)}


def read_checkpoint(path) -> dict:
    """Audio-branch tensors of a full ImageBind ``.pth`` or an audio ``.safetensors`` file.

    Never unpickles arbitrary objects: ``.pth`` files are read with
    ``torch.load(weights_only=True)`` (memory-mapped, so the 4.5 GB file is
    not read into memory whole).
    """
    from safetensors.torch import load_file

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ImageBind checkpoint not found: {path}")
    if path.endswith(".safetensors"):
        try:
            return load_file(path)
        except Exception as err:
            raise ValueError(f"{path} is not a readable safetensors file ({err}); delete it "
                             "and run `pdmer download imagebind` again.") from err
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)  # legacy format
    except Exception as err:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({err}). Is the "
                         "download complete? Its size should be that of "
                         f"{CHECKPOINT_URL}.") from err
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    audio = audio_state_dict(state) if isinstance(state, dict) else {}
    if not audio:
        raise ValueError(f"{path} holds no ImageBind audio weights (no key starts with "
                         f"{AUDIO_PREFIXES[0]!r}).")
    return {k: v.contiguous() for k, v in audio.items()}


def weights_id(path) -> str:
    """An identity of a weights file for cache keys.

    The digest stored in files written by :func:`extract_audio_weights` (read
    from the header, instantly), else the SHA-256 of the file's bytes.
    """
    from safetensors import safe_open

    from pdmer.features.cache import content_hash

    path = os.fspath(path)
    if path.endswith(".safetensors"):
        try:
            with safe_open(path, framework="pt") as handle:
                stored = (handle.metadata() or {}).get("weights_sha256")
            if stored:
                return stored
        except Exception:  # unreadable: loading will say so
            pass
    return content_hash(path)


def load_imagebind_audio(path, device="cpu", **config) -> ImageBindAudio:
    """Build :class:`ImageBindAudio` and load ``path`` into it strictly, in eval mode.

    ``config`` overrides the architecture (tests use tiny ones); a checkpoint
    whose keys or shapes differ raises a ``RuntimeError`` naming them.
    """
    state = read_checkpoint(path)
    with torch.device("meta"):
        model = ImageBindAudio(**config)
    model.load_state_dict(state, strict=True, assign=True)
    # The parameters keep requires_grad=True although the model is only run
    # under no_grad: autocast caches its bf16 copies of such leaves only, and
    # without that cache bf16 on the CPU measured ~9x slower (1.3 vs 0.15 s a clip).
    return model.to(device).eval()


def extract_audio_weights(checkpoint, output) -> dict:
    """Write the audio branch of a full ImageBind checkpoint to a safetensors file.

    Returns the audio state dict. The file is written atomically and loads in
    seconds, against about a minute for the 4.5 GB original.
    """
    from safetensors.torch import save_file

    from pdmer.files import atomic_write
    from pdmer.features.cache import state_dict_digest

    state = read_checkpoint(checkpoint)
    metadata = {"source": os.path.basename(os.fspath(checkpoint)), "license": LICENSE,
                "license_url": LICENSE_URL, "origin": CHECKPOINT_URL,
                "weights_sha256": state_dict_digest(state)}
    atomic_write(output, lambda tmp: save_file(state, tmp, metadata=metadata),
                 suffix=".safetensors")
    return state


def install_imagebind(checkpoint=None, *, url=CHECKPOINT_URL, output=None, download_dir=None,
                      keep_checkpoint=False, force=False, progress=True):
    """Install the ImageBind audio weights where ``global_encoder="imagebind"`` finds them.

    Downloads the official checkpoint (resumable, with a progress bar; no
    more and no fewer bytes than the server announces) unless ``checkpoint``
    names a local copy, checks that it is a PyTorch checkpoint holding
    ImageBind's audio branch, keeps only that branch in a safetensors file,
    and checks that it loads strictly into :class:`ImageBindAudio`. A
    downloaded file that fails any check is deleted, never used again.

    Parameters
    ----------
    checkpoint : str or os.PathLike, optional
        A local ``imagebind_huge.pth``: nothing is downloaded.
    url : str, default=CHECKPOINT_URL
        A kept download from another address is not reused: it is fetched
        again from this one.
    output : str or os.PathLike, optional
        Default :func:`pdmer.features.imagebind_weights_path`.
    download_dir : str or os.PathLike, optional
        Where the full checkpoint is downloaded (default: the user cache).
    keep_checkpoint : bool, default=False
        Keep the downloaded 4.5 GB file after extracting the audio branch.
    force : bool, default=False
        Reinstall even if ``output`` exists and loads, downloading the
        checkpoint again (a kept or partial download is discarded).
    progress : bool, default=True

    Returns
    -------
    pathlib.Path
        The installed audio weights.
    """
    from pathlib import Path

    from pdmer.features.cache import default_cache_dir

    output = Path(imagebind_weights_path() if output is None else output)
    if output.is_file() and not force:
        try:
            load_imagebind_audio(output)
            return output
        except (ValueError, RuntimeError):
            pass  # damaged or foreign: install again
    downloaded = None
    if checkpoint is None:
        folder = Path(download_dir) if download_dir else default_cache_dir() / "downloads"
        downloaded = _download_checkpoint(url, folder / "imagebind_huge.pth", force=force,
                                          progress=progress)
        checkpoint = downloaded
    try:
        extract_audio_weights(checkpoint, output)
        load_imagebind_audio(output)
    except RuntimeError as err:  # written, but not the architecture's weights
        output.unlink(missing_ok=True)
        _discard_download(downloaded)
        raise ValueError(f"{checkpoint} is not ImageBind-huge: its audio weights do not fit "
                         f"the model ({str(err).splitlines()[0]} ...).") from err
    except ValueError:  # not a checkpoint, or no audio weights in it
        _discard_download(downloaded)
        raise
    if not keep_checkpoint:
        _discard_download(downloaded)
    return output


# The first bytes of a checkpoint torch.save writes: a zip archive, or, in
# the legacy format, a pickle (protocol 2+).
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")


def _download_checkpoint(url, target, *, force, progress):
    """Download ``url`` to ``target``; a download from another URL is never reused."""
    from pathlib import Path

    from pdmer.downloads import download_file
    from pdmer.files import atomic_write

    source = _source_note(target)
    fetched_from = source.read_text().strip() if source.is_file() else None
    if force or fetched_from != url:
        _discard_download(target)
    atomic_write(source, lambda tmp: Path(tmp).write_text(url + "\n"))
    print(f"Downloading {url}", file=sys.stderr)
    path = download_file(url, target, progress=progress)
    with open(path, "rb") as handle:
        head = handle.read(512)
    if not head.startswith(_CHECKPOINT_MAGIC):
        size = os.path.getsize(path)
        _discard_download(path)
        looks = ("an HTML page" if head.lstrip()[:1] == b"<" else
                 f"data starting with {head[:16]!r}")
        raise ValueError(f"{url} did not send a PyTorch checkpoint but {looks} ({size} "
                         f"bytes, deleted). Check the address; Meta's is {CHECKPOINT_URL}.")
    return path


def _source_note(target):
    return target.with_name(target.name + ".url")


def _discard_download(target):
    """Delete a download (if any), its partial file and the note of where it came from."""
    if target is None:
        return
    for path in (target, target.with_name(target.name + ".part"), _source_note(target)):
        path.unlink(missing_ok=True)
