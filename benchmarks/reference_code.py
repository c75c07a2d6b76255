"""The authors' DSAML model and meta-training loop, run from their own source files.

The reference code of the paper is github Littleor/Personalized-DMER. This
module loads an extracted checkout of it and runs, per task, what its
``train.py`` runs: ``PDMERModel`` at the size and settings of ``train.py``
and ``utils/args.py``, wrapped in learn2learn's ``MAML`` (first order, lr
``--meta_lr`` 5e-3), and ``utils/train.py``'s ``fast_adapter``: 16
(``--adapt_steps``) inner steps on the support set, then the query loss,
whose ``backward()`` ``train.py`` calls. The loss is theirs
(``get_loss_with_batch``): 1 - the mean of CCC, PCC and 1 - RMSE over
arousal and valence, song by song, plus the diagonal attention loss.
Personalization is what their validation does for a listener
(``validate_model`` -> ``fast_adapter``): clone, then 16 first-order steps
on one 60-frame song, in training mode.

Get the checkout (no work tree needed; ``models`` and ``utils`` suffice)::

    git clone https://github.com/Littleor/Personalized-DMER /tmp/pdmer-reference-git
    mkdir -p /tmp/pdmer-reference
    git -C /tmp/pdmer-reference-git archive HEAD models utils | tar -x -C /tmp/pdmer-reference
    python benchmarks/bench_scale.py task --reference-code /tmp/pdmer-reference
    python benchmarks/bench_scale.py personalize --reference-code /tmp/pdmer-reference
    python benchmarks/reference_code.py /tmp/pdmer-reference   # alone: task and personalization

What runs is their code, with three stand-ins for packages this
environment lacks, all outside the timed arithmetic:

* ``models/PDMER.py`` imports ImageBind (torchaudio, pytorchvideo, timm)
  at module level. When that import fails, the class ``PDMERModel`` is
  taken from that file's source (its ``__init__`` and ``forward``
  unchanged) and executed with the layer modules of ``models/layer/``
  imported as they are; only ``get_embedding`` (ImageBind itself, never
  called here: training reads cached embeddings) has nothing behind it.
* ``utils/train.py`` and ``utils/inference.py`` import learn2learn,
  TensorBoard and ImageBind, so ``fast_adapter``, ``get_loss_with_batch``,
  ``get_average_score`` and ``model_wrap`` are likewise taken from their
  source and executed; ``get_score`` is imported from ``utils/score.py``.
  learn2learn's ``MAML`` is :class:`bench_reference.MAML` (learn2learn 0.2.0
  does not build on Python 3.11).
* ``models/layer/*.py`` build on five small classes of ``transformers``
  (4.37.2 in their requirements: the Q-Former's config, self-output,
  intermediate and output layers, ``apply_chunking_to_forward``). When
  ``transformers`` is not installed, :func:`_transformers_stand_in` gives
  copies of them (same layers, same order, PyTorch's default init, as
  theirs get: their encoder is a plain ``nn.Module``), only while the
  layer modules are imported.

Inputs have the shapes their training reads from its cache
(``script/dataset.py``): per song 60 frames of 0.5 s, a 51 x 128 log-mel
patch per frame (60 ms windows, 10 ms hop, 128 bands), the per-frame
1024-d ImageBind embeddings (in the batch, unused by ``forward``), one
1024-d ImageBind embedding of the whole 30 s clip, and arousal and
valence per frame.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ENV = "PDMER_REFERENCE_CODE"
"""Environment variable the tests read: the extracted checkout."""

# utils/args.py defaults, as train.py passes them (train.py:82-99, :102).
META_LR = 5e-3          # --meta_lr (utils/args.py:42-47): MAML's inner lr
ADAPT_STEPS = 16        # --adapt_steps (utils/args.py:234-239)
BATCH_SIZE = 15         # --batch_size (utils/args.py:24-29): query songs per task
NUM_SHOT = 1            # --num_shot (utils/args.py:250-255): support songs per task
N_FRAMES = 60           # --model_feature_num_per_audio (utils/args.py:151-156)
MEL_PATCH = (51, 128)   # log-mel frames x bands of 0.5 s (utils/inference.py:204-210)
AUDIO_INPUT_KEY = "log_mel_spectrogram"   # AUDIO_INPUT_KEY of their README's .env
TRAIN_KWARGS = dict(   # train.py:82-99 with the defaults of utils/args.py
    query_embed_dim=128, segmentation_duration=5, feature_num_per_audio=N_FRAMES,
    train_audio_duration=30, dropout_rate=0.1, intermediate_size=3072, hidden_act="gelu",
    max_position_embeddings=512, embed_dim=-1, audio_input_key=AUDIO_INPUT_KEY,
    local_context_length=5, global_context_length=30, position_embedding_type="relative_key")
SIZES = {   # paper: --model_num_attention_heads 16, --model_num_hidden_layers 3, 1024-d
    "paper": dict(origin_feature_dim=1024, num_attention_heads=16, num_hidden_layers=3),
    "small": dict(origin_feature_dim=128, num_attention_heads=4, num_hidden_layers=2),
    "tiny": dict(origin_feature_dim=16, num_attention_heads=2, num_hidden_layers=1),
}


def default_root() -> str | None:
    """The checkout named by ``$PDMER_REFERENCE_CODE`` if it holds the model's files."""
    root = os.environ.get(ENV)
    return root if root and is_checkout(root) else None


def is_checkout(root) -> bool:
    return os.path.isfile(os.path.join(root, "models", "layer", "multi_scale_attention.py"))


# ------------------------------------------------------------------ loading
def _definitions(path: str, names, namespace: dict) -> dict:
    """Execute the top-level definitions ``names`` of the file ``path`` in ``namespace``.

    The definitions keep their file name and line numbers (tracebacks point
    into the authors' file); nothing else of the file runs.
    """
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    wanted = set(names)
    body = [node for node in tree.body
            if (isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in wanted)
            or (isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in wanted for t in node.targets))]
    found = {getattr(n, "name", None) or n.targets[0].id for n in body}
    if found != wanted:
        raise ImportError(f"{path} lacks {sorted(wanted - found)}")
    exec(compile(ast.Module(body=body, type_ignores=[]), path, "exec"), namespace)
    return namespace


def _transformers_stand_in() -> dict:
    """Modules standing in for the parts of transformers 4.37.2 that models/layer uses.

    Copies of ``Blip2QFormerConfig`` (the attributes the layers read),
    ``Blip2QFormerSelfOutput``, ``Blip2QFormerIntermediate``,
    ``Blip2QFormerOutput`` (transformers/models/blip_2/modeling_blip_2.py),
    ``apply_chunking_to_forward`` with ``chunk_size_feed_forward`` 0 (the
    config default: no chunking) and ``BaseModelOutputWithPastAndCrossAttentions``
    (read by key). Head pruning, never used, raises.
    """
    import torch.nn as nn
    import torch.nn.functional as F

    class Blip2QFormerConfig:
        def __init__(self, vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                     num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
                     hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                     max_position_embeddings=512, initializer_range=0.02,
                     layer_norm_eps=1e-12, pad_token_id=0, position_embedding_type="absolute",
                     cross_attention_frequency=2, encoder_hidden_size=1408, **kwargs):
            fields = dict(locals())
            for name in ("self", "kwargs", "__class__"):
                fields.pop(name, None)
            self.__dict__.update(fields, **kwargs)
            self.chunk_size_feed_forward = kwargs.get("chunk_size_feed_forward", 0)

    activations = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu}

    class Blip2QFormerSelfOutput(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.dense = nn.Linear(config.hidden_size, config.hidden_size)
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            self.dropout = nn.Dropout(config.hidden_dropout_prob)

        def forward(self, hidden_states, input_tensor):
            hidden_states = self.dense(hidden_states)
            hidden_states = self.dropout(hidden_states)
            return self.LayerNorm(hidden_states + input_tensor)

    class Blip2QFormerIntermediate(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
            act = config.hidden_act
            self.intermediate_act_fn = activations[act] if isinstance(act, str) else act

        def forward(self, hidden_states):
            return self.intermediate_act_fn(self.dense(hidden_states))

    class Blip2QFormerOutput(Blip2QFormerSelfOutput):
        def __init__(self, config):
            nn.Module.__init__(self)
            self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            self.dropout = nn.Dropout(config.hidden_dropout_prob)

    class BaseModelOutputWithPastAndCrossAttentions(dict):
        def __init__(self, **fields):
            super().__init__({k: v for k, v in fields.items() if v is not None})

        __getattr__ = dict.get

    def apply_chunking_to_forward(forward_fn, chunk_size, chunk_dim, *input_tensors):
        if chunk_size:
            raise NotImplementedError("chunked feed-forward: not in the stand-in")
        return forward_fn(*input_tensors)

    def pruning(*args, **kwargs):
        raise NotImplementedError("head pruning: not in the transformers stand-in")

    def module(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        return m

    blip = module("transformers.models.blip_2.modeling_blip_2",
                  Blip2QFormerSelfOutput=Blip2QFormerSelfOutput,
                  Blip2QFormerIntermediate=Blip2QFormerIntermediate,
                  Blip2QFormerOutput=Blip2QFormerOutput)
    return {
        "transformers": module("transformers", Blip2QFormerConfig=Blip2QFormerConfig,
                               __path__=[]),
        "transformers.modeling_utils": module(
            "transformers.modeling_utils", find_pruneable_heads_and_indices=pruning,
            prune_linear_layer=pruning, apply_chunking_to_forward=apply_chunking_to_forward),
        "transformers.modeling_outputs": module(
            "transformers.modeling_outputs",
            BaseModelOutputWithPastAndCrossAttentions=BaseModelOutputWithPastAndCrossAttentions),
        "transformers.models": module("transformers.models", __path__=[]),
        "transformers.models.blip_2": module("transformers.models.blip_2", __path__=[]),
        "transformers.models.blip_2.modeling_blip_2": blip,
    }


def _missing(what):
    def unavailable(*args, **kwargs):
        raise RuntimeError(f"{what} is not available in this benchmark (ImageBind not installed)")
    return unavailable


class ReferenceCode:
    """The authors' model, loss and MAML task from the checkout at ``root``.

    ``how`` says how ``PDMERModel`` and the layers were obtained.
    """

    def __init__(self, root):
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        self.root = root = os.path.abspath(root)
        if not is_checkout(root):
            raise FileNotFoundError(f"{root} is not a checkout of Littleor/Personalized-DMER "
                                    "(no models/layer/multi_scale_attention.py)")
        if root not in sys.path:
            sys.path.insert(0, root)
        notes = []
        try:
            importlib.import_module("transformers")
        except ImportError:
            stand_in = _transformers_stand_in()
            sys.modules.update(stand_in)
            notes.append("transformers: the stand-in of benchmarks/reference_code.py")
        else:
            stand_in = {}
        try:
            layers = {name: importlib.import_module(f"models.layer.{name}") for name in (
                "feature_fusion", "multi_scale_attention", "predicton",
                "spectrogram_feature_extractor")}
        finally:
            for name in stand_in:
                sys.modules.pop(name, None)
        try:
            self.PDMERModel = importlib.import_module("models.PDMER").PDMERModel
            notes.insert(0, "models.PDMER imported")
        except ImportError as error:
            from typing import Dict, Optional, Tuple, Union

            import logging
            import math

            ns = _definitions(os.path.join(root, "models", "PDMER.py"), ["PDMERModel"], dict(
                __name__="models.PDMER", torch=torch, nn=nn, math=math, logging=logging,
                Dict=Dict, Optional=Optional, Tuple=Tuple, Union=Union,
                FeatureFusionModel=layers["feature_fusion"].FeatureFusionModel,
                TransformerMultiScaleAttention=layers[
                    "multi_scale_attention"].TransformerMultiScaleAttention,
                SequenceValuePredictionModel=layers["predicton"].SequenceValuePredictionModel,
                SpectrogramFeatureExtractor=layers[
                    "spectrogram_feature_extractor"].SpectrogramFeatureExtractor,
                imagebind_model=_missing("ImageBind"), ModalityType=_missing("ImageBind"),
                load_and_transform_audio_data=_missing("ImageBind"),
                music_segmentation=_missing("utils.music")))
            self.PDMERModel = ns["PDMERModel"]
            notes.insert(0, f"PDMERModel from the source of models/PDMER.py (import failed: "
                            f"{type(error).__name__}: {error}), models/layer/*.py imported")
        self.how = "; ".join(notes)

        from collections import defaultdict
        from typing import Dict, List, Union

        from bench_reference import MAML

        score = importlib.import_module("utils.score")
        inference = _definitions(os.path.join(root, "utils", "inference.py"), ["model_wrap"],
                                 dict(torch=torch, nn=nn, defaultdict=defaultdict, Dict=Dict,
                                      Union=Union))
        l2l = types.SimpleNamespace(algorithms=types.SimpleNamespace(MAML=MAML))
        self._train = _definitions(
            os.path.join(root, "utils", "train.py"),
            ["name_list", "get_loss_with_batch", "get_average_score", "fast_adapter"],
            dict(torch=torch, F=F, defaultdict=defaultdict, List=List, l2l=l2l,
                 get_score=score.get_score, model_wrap=inference["model_wrap"],
                 slide_inference=_missing("slide_inference")))
        self.MAML = MAML

    # ------------------------------------------------------------ building
    def model(self, size="paper", device="cpu", seed=0):
        """``PDMERModel`` as train.py:82-99 builds it, in training mode."""
        import torch

        torch.manual_seed(seed)
        return self.PDMERModel(device=str(device), **SIZES[size], **TRAIN_KWARGS).to(
            device).train()

    def maml(self, model):
        """train.py:101-103: ``l2l.algorithms.MAML(model, lr=args.meta_lr, first_order=True)``."""
        return self.MAML(model, lr=META_LR, first_order=True)

    def args(self, size="paper", steps=ADAPT_STEPS, device="cpu"):
        """The fields of train.py's ``args`` that the task reads."""
        return types.SimpleNamespace(
            adapt_steps=steps, device=str(device), audio_input_key=AUDIO_INPUT_KEY,
            model_num_hidden_layers=SIZES[size]["num_hidden_layers"])

    @staticmethod
    def batch(n_songs, size="paper", seed=0, device="cpu", n_frames=N_FRAMES):
        """``(features, [arousal, valence])`` of ``n_songs`` random songs, as their loader gives."""
        import torch

        g = torch.Generator().manual_seed(seed)
        dim = SIZES[size]["origin_feature_dim"]
        features = {
            "imagebind_audio_embedding": torch.randn(n_songs, n_frames, dim, generator=g),
            "log_mel_spectrogram": torch.randn(n_songs, n_frames, *MEL_PATCH, generator=g) * 2 - 6,
            "global_imagebind_audio_embedding": torch.randn(n_songs, 1, dim, generator=g),
        }
        labels = [torch.rand(n_songs, n_frames, generator=g) - 0.5 for _ in range(2)]
        return ({k: v.to(device) for k, v in features.items()}, [y.to(device) for y in labels])

    @staticmethod
    def first(batch, n):
        """The first ``n`` songs of a batch."""
        features, labels = batch
        return {k: v[:n] for k, v in features.items()}, [y[:n] for y in labels]

    # ------------------------------------------------------------- running
    def task(self, maml, support, query, args) -> float:
        """One meta-training task, train.py:249-259: ``fast_adapter`` then ``backward()``.

        Accumulates into the meta-parameters' ``.grad``; returns the query loss.
        """
        import torch.nn as nn

        loss, _ = self._train["fast_adapter"](
            maml=maml, criterion=nn.SmoothL1Loss(), args=args,  # train.py:112 (unused by the loss)
            support_set=support, query_set=query, writer=None)
        loss.backward()
        return float(loss.detach())

    def personalize(self, maml, song, args):
        """Their personalization: the support half of ``fast_adapter`` (utils/train.py:174-189).

        ``validate_model`` (utils/train.py:256-270) adapts a clone to the
        listener's first 60 frames, ``args.adapt_steps`` first-order steps in
        training mode (``model.eval()`` is commented out, utils/train.py:241),
        then predicts the rest; this is the adaptation. Returns the learner.
        """
        import torch.nn as nn

        loss_with_batch = self._train["get_loss_with_batch"]
        learner = maml.clone()
        for _ in range(args.adapt_steps):
            loss = loss_with_batch(model=learner, batch=song, criterion=nn.SmoothL1Loss(),
                                   device=args.device, audio_input_key=args.audio_input_key,
                                   args=args, is_validation=False)[0]
            learner.adapt(loss)
        return learner


def main(argv=None):
    """The authors' task and personalization, ``--repeats`` times each after a warm-up."""
    import argparse
    import statistics
    import time

    import torch

    parser = argparse.ArgumentParser(description="Time the authors' DSAML task and "
                                     "personalization from their checkout.")
    parser.add_argument("reference_code", metavar="DIR",
                        help="an extracted checkout of Littleor/Personalized-DMER")
    parser.add_argument("--size", choices=SIZES, default="paper")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ref = ReferenceCode(args.reference_code)
    net = ref.model(args.size)
    maml = ref.maml(net)
    support, query = ref.batch(NUM_SHOT, args.size, 1), ref.batch(BATCH_SIZE, args.size, 2)

    def task(steps=ADAPT_STEPS, q=query):
        net.zero_grad(set_to_none=True)
        start = time.perf_counter()
        ref.task(maml, support, q, ref.args(args.size, steps))
        return time.perf_counter() - start

    def personalize():
        start = time.perf_counter()
        ref.personalize(maml, support, ref.args(args.size))
        return time.perf_counter() - start

    task(steps=1, q=ref.first(query, 2))  # warm-up
    tasks = [task() for _ in range(args.repeats)]
    personalizations = [personalize() for _ in range(args.repeats)]
    print(f"authors' code from {ref.root} ({ref.how})")
    print(f"PDMERModel, {args.size}: {sum(p.numel() for p in net.parameters()) / 1e6:.1f} M "
          f"parameters, {args.threads} thread(s)")
    for what, times in (("task (learn2learn-style FOMAML, 16 steps, 1 + 15 songs)", tasks),
                        ("personalization (16 steps, one 60-frame song)", personalizations)):
        print(f"{what}: min {min(times):.2f} s, median {statistics.median(times):.2f} s "
              f"over {len(times)} runs")


if __name__ == "__main__":
    main()
