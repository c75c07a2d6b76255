"""The measurements of bench_scale.py, each run in its own process.

``python benchmarks/scale_workers.py CONFIG_JSON`` runs one measurement and
prints its result as JSON after a marker line; ``bench_scale.py`` spawns
these processes and builds the tables.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_reference import (  # noqa: E402
    GLOBAL_DIM,
    HEAD_PREFIXES,
    INNER_LR,
    INNER_STEPS,
    N_FRAMES,
    N_QUERY,
    N_SUPPORT,
    PATCH,
    build_network,
    make_batch,
    reference_task,
)
from measure import LoadProbe, MemoryProbe, release_memory, run_worker, sync  # noqa: E402
from reference_code import ADAPT_STEPS, BATCH_SIZE, NUM_SHOT, ReferenceCode  # noqa: E402

PAPER_EPISODES, PAPER_TASKS = 2000, 16


# ------------------------------------------------------------------ pdmer side
def pdmer_loss(net, device, bf16):
    """The estimator's training loss ``(state, batch, context) -> (loss, context)``.

    Mirrors ``DSAMLRegressor._forward`` and the shared loss of the estimators:
    the network through ``functional_call`` under autocast, the emotion loss
    in float32, the diagonal attention loss on the band-layout maps.
    """
    from torch.func import functional_call

    from pdmer.nn import diagonal_attention_loss, emotion_loss
    from pdmer.nn.precision import autocast

    def loss_fn(state, batch, context=None):
        need = context is None
        with autocast(device, "bf16" if bf16 else "fp32"):
            out = functional_call(net, state, (batch.local_patches, batch.global_embeddings, batch.lengths, context,
                                               need))
            aux = None
            if need:
                aux = diagonal_attention_loss(out.local_attention, out.global_attention,
                                              batch.lengths, layout="band")
        loss = emotion_loss(out.prediction.float(), batch.y, batch.mask)
        return (loss if aux is None else loss + aux.float()), out.context

    return loss_fn


def song_batch(n_songs, size, seed, device, n_frames=N_FRAMES):
    from pdmer.meta.batch import SongBatch

    local, glob, lengths, y, mask = (t.to(device) for t in make_batch(n_songs, size, seed,
                                                                        n_frames))
    return SongBatch(local, glob, y, lengths, mask)


def pdmer_task(net, loss_fn, support, query, inner_params, first_order=True,
               steps=INNER_STEPS):
    """One task of pdmer's sequential loop, as the estimator runs it."""
    from pdmer.meta.maml import maml_task_backward

    params = dict(net.named_parameters())
    names = [n for n in params if inner_params == "all" or n.startswith(HEAD_PREFIXES)]
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    cache = {}

    def support_loss(state, batch):
        value, context = loss_fn({**state, **buffers}, batch, cache.get("context"))
        if inner_params == "head" and "context" not in cache:
            cache["context"] = context.detach() if first_order else context
        return value

    return maml_task_backward(support_loss, lambda s, b: loss_fn(s, b)[0], params, names,
                              support, query, steps, INNER_LR, first_order=first_order)


def pdmer_batched(net, loss_fn, tasks, inner_params, mode="fomaml"):
    from pdmer.meta.vmapped import vmapped_tasks_backward

    names = [n for n, _ in net.named_parameters()
             if inner_params == "all" or n.startswith(HEAD_PREFIXES)]
    return vmapped_tasks_backward(loss_fn, net, names, tasks, mode, INNER_STEPS, INNER_LR,
                                  weight=1.0 / len(tasks), reuse_context=inner_params == "head")


# -------------------------------------------------------------------- workers
def worker_task(cfg):
    """Time one task of one variant (after a short warm-up)."""
    import torch

    device = torch.device(cfg["device"])
    size, variant, inner = cfg["size"], cfg["variant"], cfg["inner_params"]
    if cfg.get("pdmer_path"):
        sys.path.insert(0, cfg["pdmer_path"])
    n_tasks = cfg.get("tasks", 1)
    if variant != "reference-code":
        net = build_network(size).to(device)
    if variant == "reference-code":
        # The authors' model and loop (benchmarks/reference_code.py): their
        # fast_adapter on PDMERModel, learn2learn-style FOMAML, float32, every
        # parameter adapted (inner_params does not apply).
        ref = ReferenceCode(cfg["reference_code"])
        net = ref.model(size, device)
        maml = ref.maml(net)
        support = ref.batch(NUM_SHOT, size, 1, device)
        query = ref.batch(BATCH_SIZE, size, 2, device)
        short_query = ref.first(query, 2)

        def run(steps=ADAPT_STEPS, q=query):
            return ref.task(maml, support, q, ref.args(size, steps, device))
    elif variant == "reference":
        support = tuple(t.to(device) for t in make_batch(N_SUPPORT, size, 1))
        query = tuple(t.to(device) for t in make_batch(N_QUERY, size, 2))
        short_query = tuple(t[:2] for t in query)

        def run(steps=INNER_STEPS, q=query):
            return reference_task(net, support, q, steps=steps, inner_params=inner)
    elif variant in ("pdmer-estimator", "pdmer-estimator-default"):
        # The training step exactly as DSAMLRegressor runs it (paper preset,
        # precision="bf16", or the default precision="auto"):
        # MetaLearner.task_backward, whose inner steps run in eval mode
        # (adapt_mode="eval", the estimators' default).
        est, _ = _estimator(size, cfg["device"],
                            precision="bf16" if variant == "pdmer-estimator" else "auto",
                            inner_params=inner)
        net, learner = est.network_.train(), est.meta_learner()
        tasks = [(song_batch(N_SUPPORT, size, 1, device), song_batch(N_QUERY, size, 2, device))]
        short_query = None

        def run(steps=INNER_STEPS, q=None):
            return learner.task_backward(tasks[0][0], q or tasks[0][1], steps=steps)
    else:
        bf16 = variant != "pdmer-fp32"
        loss_fn = pdmer_loss(net, device, bf16)
        if cfg.get("compile"):
            loss_fn = _compiled(loss_fn)
        tasks = [(song_batch(N_SUPPORT, size, 1 + 2 * t, device),
                  song_batch(N_QUERY, size, 2 + 2 * t, device)) for t in range(n_tasks)]

        def run(steps=INNER_STEPS, q=None):
            if variant == "pdmer-batched":
                return pdmer_batched(net, loss_fn, tasks, inner)
            return pdmer_task(net, loss_fn, tasks[0][0], q or tasks[0][1], inner, steps=steps)
        short_query = None
    probe = MemoryProbe(device)
    net.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    if variant == "pdmer-batched" or cfg.get("compile"):
        run()  # full warm-up: vmap tracing / compilation
    else:
        run(steps=1, q=short_query if variant.startswith("reference") else
            _first(tasks[0][1], 2))
    sync(device)
    warmup = time.perf_counter() - t0
    load = LoadProbe()
    net.zero_grad(set_to_none=True)
    wall, cpu = time.perf_counter(), time.process_time()
    loss = run()
    sync(device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": wall / n_tasks, "cpu_s": cpu / n_tasks, "warmup_s": warmup,
            "loss": loss if isinstance(loss, float) else float(sum(loss) / len(loss)),
            "tasks": n_tasks, "other_cores": load.others(), **probe.result()}


def worker_episode(cfg):
    """One episode of ``cfg["tasks"]`` first-order tasks on every parameter.

    ``reference``: the learn2learn-style loop, tasks one after another on
    ``cfg["threads"]`` torch threads. ``pdmer-processes``: pdmer's bf16 loop
    under ``torchrun``, each process (one thread) computing its share of the
    tasks, then the gradients summed over the processes
    (:mod:`pdmer.meta.distributed`), as the estimators train under torchrun.
    """
    import torch
    import torch.distributed as dist

    if cfg.get("pdmer_path"):
        sys.path.insert(0, cfg["pdmer_path"])
    device = torch.device("cpu")
    size, n_tasks = cfg["size"], cfg["tasks"]
    net = build_network(size)
    if cfg["variant"] == "reference":
        processes, mine = None, range(n_tasks)
        tasks = [(make_batch(N_SUPPORT, size, 1 + 2 * t), make_batch(N_QUERY, size, 2 + 2 * t))
                 for t in mine]

        def run(steps=INNER_STEPS, n_query=N_QUERY):
            for support, query in tasks:
                reference_task(net, support, tuple(t[:n_query] for t in query), steps=steps)
    else:
        from pdmer.meta.distributed import join

        processes = join(device)
        mine = range(n_tasks) if processes is None else processes.shard(n_tasks)
        loss_fn = pdmer_loss(net, device, bf16=True)
        tasks = [(song_batch(N_SUPPORT, size, 1 + 2 * t, device),
                  song_batch(N_QUERY, size, 2 + 2 * t, device)) for t in mine]

        def run(steps=INNER_STEPS, n_query=N_QUERY):
            for support, query in tasks:
                pdmer_task(net, loss_fn, support, _first(query, n_query), "all", steps=steps)
            if processes is not None:
                processes.reduce_gradients(list(net.parameters()))

    run(steps=1, n_query=2)  # warm-up
    net.zero_grad(set_to_none=True)
    if processes is not None:
        dist.barrier()
    load = LoadProbe()
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "tasks": n_tasks, "my_tasks": len(mine),
            "processes": 1 if processes is None else processes.world_size,
            "other_cores": load.others()}


def _first(batch, n):
    import dataclasses

    return dataclasses.replace(batch, **{f.name: getattr(batch, f.name)[:n]
                                         for f in dataclasses.fields(batch)
                                         if getattr(batch, f.name) is not None})


def _compiled(loss_fn):
    import torch

    return torch.compile(loss_fn, dynamic=False)


def _estimator(size, device, **params):
    """A fitted paper-size DSAMLRegressor (one tiny episode), then paper settings."""
    import numpy as np

    from pdmer import DSAMLRegressor
    from pdmer.features import SongFeatures

    rng = np.random.default_rng(0)

    def features(n_frames, source):
        local = rng.standard_normal((n_frames, *PATCH), dtype=np.float32) * 2 - 6
        glob = rng.standard_normal((n_frames, GLOBAL_DIM[size]), dtype=np.float32)
        return SongFeatures(local, glob, encoder="imagebind" if size == "paper" else
                            "logmel-stats", source=source)

    songs = [features(8, f"setup{i}") for i in range(2)]
    labels = [rng.uniform(-0.5, 0.5, (8, 2)).astype(np.float32) for _ in songs]
    est = DSAMLRegressor(size=size, device=device, random_state=0, n_episodes=1,
                         tasks_per_step=1, n_support=1, n_query=1, inner_steps=1,
                         validation_fraction=0.0, **params).fit(songs, labels)
    est.set_params(inner_steps=INNER_STEPS, inner_lr=INNER_LR)
    release_memory()
    return est, features


def worker_personalize(cfg):
    import numpy as np
    import torch

    variant = cfg["variant"]
    if variant == "reference-code":
        # The authors' personalization (benchmarks/reference_code.py): a
        # learn2learn-style clone, their 16 first-order steps on one song.
        ref = ReferenceCode(cfg["reference_code"])
        device = torch.device(cfg["device"])
        maml = ref.maml(ref.model(cfg["size"], device))
        song = ref.batch(1, cfg["size"], 1, device)
        args = ref.args(cfg["size"], ADAPT_STEPS, device)

        def run():
            ref.personalize(maml, song, args)
    elif variant.startswith("public"):
        est, features = _estimator(cfg["size"], cfg["device"])
        device = est.device_
        song = features(N_FRAMES, "listener-song")
        labels = np.random.default_rng(1).uniform(-0.5, 0.5, (N_FRAMES, 2)).astype(np.float32)
        est.set_params(precision="bf16" if variant == "public-bf16" else "auto")

        def run():  # explicit: personalize defaults to the fitted (setup) settings
            est.personalize([song], [labels], steps=INNER_STEPS, lr=INNER_LR)
    else:
        from pdmer.meta.maml import adapt

        est, _ = _estimator(cfg["size"], cfg["device"])
        device = est.device_
        net = est.network_
        loss_fn = pdmer_loss(net, device, bf16=True)
        batch = song_batch(1, cfg["size"], 1, device)

        def run():
            params = {n: p.detach().clone().requires_grad_(True)
                      for n, p in net.named_parameters()}
            buffers = {n: b.clone() for n, b in net.named_buffers()}
            net.train()
            adapt(lambda s, b: loss_fn({**s, **buffers}, b)[0], params, list(params), batch,
                  INNER_STEPS, INNER_LR, in_place=True)
    probe = MemoryProbe(device)
    run()  # warm-up
    load = LoadProbe()
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    sync(device)
    result = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
              "other_cores": load.others(), **probe.result()}
    if cfg.get("profile"):
        from torch.profiler import profile

        with profile() as prof:
            run()
        result["profile"] = _categories(prof)
    del torch
    return result


_CATEGORIES = (
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear",
                         "aten::matmul")),
    ("adapter convolutions", ("convolution",)),
    ("adapter BatchNorm", ("batch_norm",)),
    ("adapter max-pooling", ("max_pool",)),
    ("LSTM", ("rnn", "lstm")),
    ("dtype casts and copies", ("aten::copy_", "aten::_to_copy")),
    ("SGD update and other element-wise", ("aten::sub", "aten::mul", "aten::add",
                                           "aten::add_", "aten::div", "aten::where")),
    ("dropout", ("bernoulli", "dropout")),
)


def _categories(prof) -> dict:
    """Self CPU time of the profiled run grouped into coarse categories (fractions)."""
    totals, everything = {}, 0.0
    for event in prof.key_averages():
        self_time = event.self_cpu_time_total
        everything += self_time
        for name, needles in _CATEGORIES:
            if any(n in event.key for n in needles):
                totals[name] = totals.get(name, 0.0) + self_time
                break
        else:
            totals["other"] = totals.get("other", 0.0) + self_time
    return {k: v / everything for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def worker_predict(cfg):
    est, features = _estimator(cfg["size"], cfg["device"])
    n_frames = int(round(cfg["minutes"] * 120))
    song = features(n_frames, "long-song")
    probe = MemoryProbe(est.device_)
    est.predict([song.crop(0, 120)])  # warm-up
    load = LoadProbe()
    wall, cpu = time.perf_counter(), time.process_time()
    [curve] = est.predict([song])
    sync(est.device_)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert curve.shape == (n_frames, 2)
    return {"wall_s": wall, "cpu_s": cpu, "frames": n_frames,
            "s_per_minute": wall / cfg["minutes"], "other_cores": load.others(),
            **probe.result()}


def worker_accuracy(cfg):
    """A short meta-training run on synthetic listeners; CCC after personalization."""
    from pdmer import DSAMLRegressor
    from pdmer.evaluation import plan_episodes, run_episodes
    from pdmer.experiments.presets import PRESETS
    from pdmer.features import AudioFeatures
    from pdmer.scoring import evaluate
    from pdmer_datasets import synthetic

    preset = PRESETS["small"]  # the demo's data, front end and DSAML width
    data = synthetic.generate(cfg["data_dir"], random_state=0, n_jobs=1, **preset.data)
    table_ = data.annotator_table()
    train, test = table_.split_annotators(test_size=0.25, random_state=0)
    front = AudioFeatures(**{k: v for k, v in preset.features.items() if k != "waveform_rate"})
    features = dict(zip(data.song_ids, front.transform(
        [str(data.audio_path(s)) for s in data.song_ids])))
    train.X = [features[s] for s in train.song_ids]
    test.X = [features[s] for s in test.song_ids]
    params = dict(preset.models["dsaml"], **preset.training, inner_params="all",
                  random_state=cfg["seed"], n_episodes=cfg["episodes"], validation_fraction=0.0)
    # "bf16" autocasts on CPUs with native bfloat16; "fp32" is float32.
    est = DSAMLRegressor(**params, precision="bf16" if cfg["variant"] == "bf16" else "fp32")
    t0 = time.process_time()
    est.fit(*train)
    fit_cpu = time.process_time() - t0
    episodes = plan_episodes(test.annotators, n_support=1, random_state=0)
    truth, predictions, _ = run_episodes(est, test.X, test.y, episodes)
    scores = evaluate(truth, predictions)
    return {"ccc_mean": scores["ccc_mean"], "ccc_arousal": scores["ccc_arousal"],
            "ccc_valence": scores["ccc_valence"], "final_loss": est.history_["loss"][-1],
            "fit_cpu_s": fit_cpu}


def worker_gpu(cfg):
    """Episode time, memory and prediction throughput on CUDA."""
    import torch

    device = torch.device(cfg["device"])
    if device.type != "cuda" or not torch.cuda.is_available():
        raise RuntimeError("The gpu measurement needs --device cuda and a CUDA GPU.")
    size = cfg["size"]
    net = build_network(size).to(device)
    loss_fn = pdmer_loss(net, device, bf16=True)
    tasks = [(song_batch(N_SUPPORT, size, 1 + 2 * t, device),
              song_batch(N_QUERY, size, 2 + 2 * t, device)) for t in range(PAPER_TASKS)]
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-5)
    out = {"gpu": torch.cuda.get_device_name(device)}
    for mode in ("sequential", "batched"):
        def episode():
            optimizer.zero_grad(set_to_none=True)
            if mode == "batched":
                group = cfg["group"] or PAPER_TASKS
                for i in range(0, PAPER_TASKS, group):
                    pdmer_batched(net, loss_fn, tasks[i: i + group], cfg["inner_params"],
                                  mode=cfg["order"])
            else:
                # cuDNN's LSTM has no double backward.
                flags = (torch.backends.cudnn.flags(enabled=False) if cfg["order"] == "maml"
                         else contextlib.nullcontext())
                with flags:
                    for support, query in tasks:
                        pdmer_task(net, loss_fn, support, query, cfg["inner_params"],
                                   first_order=cfg["order"] == "fomaml")
            optimizer.step()

        episode()  # warm-up
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(cfg["repeats"]):
            t0 = time.perf_counter()
            episode()
            torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        frames = PAPER_TASKS * (N_SUPPORT * INNER_STEPS + N_QUERY) * N_FRAMES
        out[mode] = {"episode_s": statistics.median(times), "episode_min_s": min(times),
                     "gpu_peak_gib": torch.cuda.max_memory_allocated(device) / 2**30,
                     "train_frames_per_s": frames / statistics.median(times),
                     "full_run_h": statistics.median(times) * PAPER_EPISODES / 3600}
    from pdmer.nn.precision import autocast

    net.eval()
    n_frames = int(cfg["minutes"] * 120)
    song = song_batch(1, size, 99, device, n_frames)
    with torch.no_grad(), autocast(device, "bf16"):
        net(song.local_patches, song.global_embeddings)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        net(song.local_patches, song.global_embeddings)
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
    out["predict"] = {"frames": n_frames, "frames_per_s": n_frames / seconds,
                      "gpu_peak_gib": torch.cuda.max_memory_allocated(device) / 2**30}
    return out


WORKERS = {"task": worker_task, "episode": worker_episode, "personalize": worker_personalize,
           "predict": worker_predict, "accuracy": worker_accuracy, "gpu": worker_gpu}


if __name__ == "__main__":
    run_worker(WORKERS, json.loads(sys.argv[1]))
